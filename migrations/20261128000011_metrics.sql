-- Metrics collected from instances (see api/src/observe): the latest samples of each instance
-- (instance-wide and per database, from one connection to its maintenance database) and of
-- each database's table health (from a connection into the database, a few per pass).
-- /metrics endpoints render from here: a scrape never connects to an instance.
CREATE TABLE instance_metrics (
    instance_id uuid PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
    collected_at timestamptz NOT NULL,
    up boolean NOT NULL,
    error text,
    samples jsonb NOT NULL
);

CREATE TABLE database_metrics (
    database_id uuid PRIMARY KEY REFERENCES databases (id) ON DELETE CASCADE,
    collected_at timestamptz NOT NULL,
    samples jsonb NOT NULL
);
