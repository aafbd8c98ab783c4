-- The two partial indexes 013_privacy.sql put on clients' blind indexes are
-- read by no query: the reader's search is trigram search on the plain
-- columns (API.md: `search` matches names, email, phone), the contract has
-- no exact email or phone lookup, and no uniqueness is enforced (two clients
-- may share an email). Yet every sealed client row paid for them: two
-- inserts at a random place of a B-tree keyed by (tenant, 64 hex digits).
-- Profiled over the bench's projection of 200,000 ClientRegistered sealed
-- and plain (docs/bench.md, stop 19), PostgreSQL's B-tree code, memcmp and
-- buffer lookups took 2.14, 2.42 and 1.39 times the plain events' samples
-- on the sealed ones with them, 0.84-0.98, 0.96-1.14 and 0.75-0.97 without
-- (two runs); its totals, 1.197 with and 1.033 and 0.873 without, move by
-- 10 % between the sides of one run. The columns stay, filled as before:
-- the first query that looks a client up by blind index adds the index it
-- needs (docs/decisions.md § Blind indexes kept, their indexes dropped).
DROP INDEX IF EXISTS clients_email_bidx;
DROP INDEX IF EXISTS clients_phone_bidx;
