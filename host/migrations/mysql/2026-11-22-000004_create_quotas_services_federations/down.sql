DROP TABLE federation;
DROP TABLE magnum_service;
DROP TABLE project_locks;
DROP TABLE quotas;
