-- One timeline per release and per install task (owned by the timelines
-- projection; rebuildable). Ticket events do not all say what the ticket was
-- raised for, so the projection remembers it from `approval.ticket_created`.
CREATE TABLE timeline_tickets (
    ticket        text PRIMARY KEY,
    subject_type  text NOT NULL,
    subject_id    text NOT NULL
);

CREATE TABLE timeline_entries (
    subject_type  text   NOT NULL,
    subject_id    text   NOT NULL,
    position      bigint NOT NULL,
    PRIMARY KEY (subject_type, subject_id, position)
);
CREATE INDEX timeline_entries_position ON timeline_entries (position);

-- Every applied release of a service on a target, in log order (owned by the
-- release_history projection): what a rollback re-applies.
CREATE TABLE release_history (
    release_id        uuid   PRIMARY KEY,
    service_id        uuid   NOT NULL,
    target_id         uuid   NOT NULL,
    applied_position  bigint NOT NULL
);
CREATE INDEX release_history_lookup ON release_history (service_id, target_id, applied_position);
