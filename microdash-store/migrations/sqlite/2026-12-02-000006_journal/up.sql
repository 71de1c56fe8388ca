-- How far the workers got through each embedded queue journal, written in the transaction that
-- stores the points (see ARCHITECTURE.md, "The embedded queue's journal"). Every sequence
-- number up to `low_water` is stored (or was never written); each worker ("writer") keeps a
-- row of its own so that workers never wait for each other's row.
CREATE TABLE journal_marks (
    journal_id VARCHAR(64) NOT NULL,
    writer INTEGER NOT NULL,
    low_water BIGINT NOT NULL,
    PRIMARY KEY (journal_id, writer)
) WITHOUT ROWID;

-- Ranges of sequence numbers above the low-water mark that are stored: workers commit out of
-- order. A writer deletes its own ranges once the low-water mark covers them.
CREATE TABLE journal_ranges (
    journal_id VARCHAR(64) NOT NULL,
    writer INTEGER NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (journal_id, writer, first_seq)
) WITHOUT ROWID;
