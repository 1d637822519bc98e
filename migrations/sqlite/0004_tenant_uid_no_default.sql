-- PostgreSQL drops the default of tenants.uid here (../postgres/0004). SQLite cannot change a
-- column's default in place, and one host owns an SQLite file, so there is nothing to guard
-- against; this keeps the two folders' numbering in step.
SELECT 1;
