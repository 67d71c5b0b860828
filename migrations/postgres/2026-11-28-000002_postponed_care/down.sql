DROP TABLE appointment_events;
DROP TABLE appointments;
DROP TABLE incident_sites;
DROP TABLE incidents;
DROP TABLE patients;
