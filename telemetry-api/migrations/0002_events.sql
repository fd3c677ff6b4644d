-- The append-only event log and the views derived from it.

create table events (
    event_id uuid primary key,
    user_id uuid not null references users (id) on delete cascade,
    kind text not null,
    occurred_at timestamptz not null,
    received_at timestamptz not null default now(),
    session_id uuid,
    -- Copied out of `payload` at ingest so that queries can filter and join
    -- without reading JSON.
    completion_id uuid,
    model text,
    language text,
    editor text not null default '',
    editor_version text not null default '',
    plugin_version text not null default '',
    os text not null default '',
    -- The event's `data`, normalised by the service.
    payload jsonb not null
);

create index events_user_time on events (user_id, occurred_at);
create index events_kind_time on events (kind, occurred_at);
create index events_completion on events (completion_id, kind) where completion_id is not null;

-- Append-only: rows are inserted and (with their account) deleted, never
-- changed.
create function events_reject_update() returns trigger language plpgsql as $$
begin
    raise exception 'events is append-only';
end;
$$;

create trigger events_append_only before update on events
    for each row execute function events_reject_update();

create view completion_requests as
select event_id, user_id, occurred_at, session_id, completion_id, language, editor, os,
       payload ->> 'trigger' as trigger_kind,
       payload ->> 'file_extension' as file_extension,
       (payload ->> 'caret_line')::integer as caret_line,
       (payload ->> 'document_length')::integer as document_length,
       (payload ->> 'relative_position')::double precision as relative_position,
       (payload ->> 'prefix_length')::integer as prefix_length,
       (payload ->> 'suffix_length')::integer as suffix_length,
       payload -> 'context_sources' as context_sources,
       (payload -> 'behaviour' ->> 'typing_speed_cps')::double precision as typing_speed_cps,
       (payload -> 'behaviour' ->> 'ms_since_last_shown')::bigint as ms_since_last_shown,
       (payload -> 'behaviour' ->> 'ms_since_last_accepted')::bigint as ms_since_last_accepted,
       payload ->> 'prefix' as prefix,
       payload ->> 'suffix' as suffix
from events
where kind = 'completion_requested';

create view generations as
select event_id, user_id, occurred_at, completion_id, model, editor,
       payload ->> 'text' as text,
       payload ->> 'finish_reason' as finish_reason,
       (payload ->> 'prompt_tokens')::integer as prompt_tokens,
       (payload ->> 'completion_tokens')::integer as completion_tokens,
       (payload ->> 'reused_tokens')::integer as reused_tokens,
       (payload -> 'latency' ->> 'queue_ms')::double precision as queue_ms,
       (payload -> 'latency' ->> 'prefill_ms')::double precision as prefill_ms,
       (payload -> 'latency' ->> 'decode_ms')::double precision as decode_ms,
       (payload ->> 'confidence')::double precision as confidence,
       payload -> 'logprobs' as logprobs
from events
where kind = 'completion_generated';

create view completion_outcomes as
select event_id, user_id, occurred_at, completion_id, model, editor,
       kind as outcome,
       (payload ->> 'accepted_chars')::integer as accepted_chars
from events
where kind in ('shown', 'accepted', 'partially_accepted', 'dismissed', 'typed_over', 'superseded');

create view ground_truths as
select event_id, user_id, occurred_at, completion_id, model,
       (payload ->> 'after_secs')::integer as after_secs,
       (payload ->> 'accepted')::boolean as accepted,
       payload ->> 'text' as text
from events
where kind = 'ground_truth';

create view agent_runs as
select event_id, user_id, occurred_at,
       (payload ->> 'run_id')::uuid as run_id,
       payload ->> 'command' as command,
       (payload ->> 'steps')::integer as steps,
       (payload ->> 'duration_ms')::bigint as duration_ms,
       payload ->> 'verdict' as verdict
from events
where kind = 'agent_run';

create view agent_steps as
select event_id, user_id, occurred_at, model,
       (payload ->> 'run_id')::uuid as run_id,
       (payload ->> 'index')::integer as step_index,
       payload ->> 'role' as role,
       (payload ->> 'input_tokens')::integer as input_tokens,
       (payload ->> 'output_tokens')::integer as output_tokens,
       (payload ->> 'cost_usd')::double precision as cost_usd,
       (payload ->> 'duration_ms')::bigint as duration_ms,
       payload ->> 'verdict' as verdict
from events
where kind = 'agent_step';
