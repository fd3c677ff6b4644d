-- Accounts, sessions, consent and login throttling.

create table users (
    id uuid primary key default gen_random_uuid(),
    email text not null,
    password_hash text not null,
    role text not null default 'user' check (role in ('user', 'researcher', 'admin')),
    -- TOTP secret (RFC 6238); set on enrolment, used once confirmed.
    totp_secret bytea,
    totp_enabled boolean not null default false,
    -- The last accepted TOTP time step, so a code cannot be replayed.
    totp_last_step bigint,
    created_at timestamptz not null default now()
);

create unique index users_email_key on users (lower(email));

-- Bearer tokens are stored only as SHA-256 hashes.
create table sessions (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references users (id) on delete cascade,
    token_hash bytea not null unique,
    device text not null default '',
    created_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    expires_at timestamptz not null
);

create index sessions_user_id on sessions (user_id);

create table consents (
    user_id uuid not null references users (id) on delete cascade,
    category text not null check (category in ('usage', 'code')),
    granted boolean not null,
    updated_at timestamptz not null default now(),
    primary key (user_id, category)
);

-- Failed logins, counted per account (email) and per client address.
create table login_failures (
    id bigserial primary key,
    email text not null,
    ip text not null,
    failed_at timestamptz not null default now()
);

create index login_failures_email on login_failures (lower(email), failed_at);
create index login_failures_ip on login_failures (ip, failed_at);
