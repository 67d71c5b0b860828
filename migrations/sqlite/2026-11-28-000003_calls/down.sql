DROP TABLE call_centre;
DROP TABLE calls;
