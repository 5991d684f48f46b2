DROP TABLE local_stack;
