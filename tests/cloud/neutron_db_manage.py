"""neutron-db-manage for PostgreSQL (run with the cloud venv's python).

Neutron 29.0.0's migration d553edeb540f (2025.2, "tag case sensitive") runs
`ALTER TABLE tags CONVERT TO CHARACTER SET utf8mb4 ...`, which is MySQL only:
on PostgreSQL it is a syntax error and `upgrade heads` stops there (upstream
no longer tests PostgreSQL). PostgreSQL text comparison is already case
sensitive, so on any other dialect those statements are skipped; everything
else is the stock neutron-db-manage.
"""
import sys

from alembic import op

_execute = op.execute


def _execute_unless_mysql_only(sqltext, *args, **kwargs):
    if (isinstance(sqltext, str) and "utf8mb4" in sqltext
            and op.get_bind().dialect.name != "mysql"):
        return None
    return _execute(sqltext, *args, **kwargs)


op.execute = _execute_unless_mysql_only

from neutron.db.migration.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "neutron-db-manage"
    sys.exit(main())
