-- Secrets of the deployment, made on first use by the service (random bytes
-- from the OS), e.g. the key of the pseudonymous user ids in research
-- exports.

create table service_keys (
    name text primary key,
    key bytea not null,
    created_at timestamptz not null default now()
);
