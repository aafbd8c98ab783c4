-- The trigram indexes get a small pending list back (migration 004 had
-- turned it off). Without one, every inserted or updated name is merged into
-- the GIN posting trees row by row: `make bench` measured the 1M-event
-- projection at 2,886 events/s and COPY of the same rows at 9,593 rows/s,
-- and 3,391 vs 2,735 events/s (COPY 22,830 vs 10,855 rows/s) on 50k events
-- with the list on. What 004 guarded against was the default 4 MB list, which
-- a bulk of registrations filled until the planner priced the index above a
-- seq scan; a 128 kB list is merged by the inserting backend as soon as it is
-- full, so it never grows enough to change the plan
-- (test_search_on_a_large_tenant_uses_the_trigram_index, 20k rows).
ALTER INDEX patients_search_trgm SET (fastupdate = on, gin_pending_list_limit = 128);
ALTER INDEX clients_search_trgm SET (fastupdate = on, gin_pending_list_limit = 128);
