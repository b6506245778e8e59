-- The role a time line was priced for, for ERPs that keep one bill rate per role (Tryton's
-- tasks named `<role> @ <rate> <ccy>`).
ALTER TABLE lines ADD COLUMN role TEXT;
