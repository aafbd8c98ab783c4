-- The two partial indexes 013_privacy.sql put on clients' blind indexes are
-- read by no query: the reader's search is trigram search on the plain
-- columns (API.md: `search` matches names, email, phone), the contract has
-- no exact email or phone lookup, and no uniqueness is enforced (two clients
-- may share an email). Yet every sealed client row paid for them: two
-- inserts at a random place of a B-tree keyed by (tenant, 64 hex digits).
-- Profiled over the bench's projection of 200,000 ClientRegistered sealed
-- and plain (docs/bench.md, stop 19), PostgreSQL spent 1.197 times the plain
-- events' CPU samples on the sealed ones with them, 1.033 without (B-tree
-- code, comparisons and buffer lookups then equal on both sides); hash
-- indexes instead: 1.161. The columns stay, filled as before: the first
-- query that looks a client up by blind index adds the index it needs
-- (docs/decisions.md § Blind indexes kept, their indexes dropped).
DROP INDEX IF EXISTS clients_email_bidx;
DROP INDEX IF EXISTS clients_phone_bidx;
