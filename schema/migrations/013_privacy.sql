-- Personal data (issue 18, docs/privacy.md). ClientRegistered and
-- ClientContactUpdated v2 carry the personal fields sealed; the projector opens
-- them into the same columns as before (search and contacts need the text),
-- and keeps the events' blind indexes of email and phone (keyed BLAKE2b of the
-- normalised value, hex) for exact matches and uniqueness checks that do not
-- need the value. NULL for clients registered by v1 events (no index key was
-- applied to them) and for a field that is absent.
ALTER TABLE clients
    ADD COLUMN email_bidx text,
    ADD COLUMN phone_bidx text;
CREATE INDEX clients_email_bidx ON clients (tenant_id, email_bidx) WHERE email_bidx IS NOT NULL;
CREATE INDEX clients_phone_bidx ON clients (tenant_id, phone_bidx) WHERE phone_bidx IS NOT NULL;
