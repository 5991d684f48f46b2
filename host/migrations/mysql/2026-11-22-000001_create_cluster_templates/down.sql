DROP TABLE cluster_template;
