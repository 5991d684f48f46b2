DROP TABLE nodegroup;
