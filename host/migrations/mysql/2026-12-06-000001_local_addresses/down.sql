DROP TABLE local_ip;
