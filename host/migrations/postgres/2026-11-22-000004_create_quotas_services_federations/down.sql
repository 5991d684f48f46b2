DROP TABLE federation;
DROP TABLE magnum_service;
DROP TABLE quotas;
