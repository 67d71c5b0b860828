DROP TABLE call_centre;
DROP TABLE call_hours;
DROP TABLE calls;
