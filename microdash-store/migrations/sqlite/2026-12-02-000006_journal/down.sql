DROP TABLE journal_ranges;
DROP TABLE journal_marks;
