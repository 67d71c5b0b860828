#!/usr/bin/env python3
"""Drives a real server with the Python client that openapi-python-client generated from its
/api/openapi.json (.ci/openapi.py), as a hospital's integration team would:

    client_drive.py BASE_URL ADMIN_TOKEN      (the package `reprise_client` on PYTHONPATH)

A site and a service, a patient, an appointment; an incident that postpones it; a call logged
twice with one Idempotency-Key (one call); the call statistics; the contact list (JSON parsed
by the client, CSV through its HTTP client); both CSV imports. Every answer's status and type
is checked; prints one line per check and `client_drive.checks=N`.
"""

import sys
import uuid

from reprise_client import AuthenticatedClient
from reprise_client.api.appointments import (
    appointments_create,
    appointments_import,
    appointments_read,
)
from reprise_client.api.calls import calls_create, calls_import, calls_stats
from reprise_client.api.contact_lists import contact_list_export
from reprise_client.api.incidents import incidents_create
from reprise_client.api.patients import patients_create, patients_search
from reprise_client.api.sites import services_create, sites_create
from reprise_client.models import (
    AppointmentDetail,
    AppointmentImport,
    AppointmentResponse,
    CallImport,
    CallResponse,
    CallStats,
    ContactList,
    ContactListItem,
    CreateAppointment,
    CreateCall,
    CreateIncident,
    CreatePatient,
    CreateService,
    CreateSite,
    IncidentResponse,
    PatientList,
    PatientResponse,
    SearchPatients,
    ServiceResponse,
    SiteResponse,
)
from reprise_client.types import File

checks = 0


def check(what, condition):
    global checks
    if not condition:
        sys.exit(f"client drive: FAILED: {what}")
    checks += 1
    print(f"ok {checks:2} {what}")


def answer(what, response, status, kind):
    """The parsed answer, after checking its status and its type."""
    check(f"{what}: {response.status_code}", response.status_code == status)
    check(f"{what}: a {kind.__name__}", isinstance(response.parsed, kind))
    return response.parsed


def main():
    base, token = sys.argv[1], sys.argv[2]
    client = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)

    site = answer("site created", sites_create.sync_detailed(client=client, body=CreateSite(
        code="CLI", name="Clinique du client", kind="hospital", operating_rooms=3)),
        201, SiteResponse)
    check("site is open", site.status == "open" and site.code == "CLI")
    service = answer("service created", services_create.sync_detailed(
        client=client, body=CreateService(code="CLI-ORTHO", name="Orthopédie", site="CLI",
                                          secretariat_phone="063 21 11 11")),
        201, ServiceResponse)
    check("service's phone is E.164", service.secretariat_phone == "+3263211111")

    patient = answer("patient created", patients_create.sync_detailed(
        client=client, body=CreatePatient(last_name="Lambotte", first_name="Éloïse",
                                          birth_date="1958-11-03", phone="061 23 45 67",
                                          email="eloise.lambotte@example.be", language="fr",
                                          email_consent=True)),
        201, PatientResponse)
    check("patient has an id", uuid.UUID(patient.id) is not None)
    found = answer("patient search", patients_search.sync_detailed(
        client=client, body=SearchPatients(q="lambot")), 200, PatientList)
    check("the search finds her", any(p.id == patient.id for p in found.items))

    appointment = answer("appointment created", appointments_create.sync_detailed(
        client=client, body=CreateAppointment(
            patient_id=patient.id, site="CLI", service="CLI-ORTHO", kind="operation",
            label="Prothèse de hanche", scheduled_at="2022-05-16T08:30:00+02:00", priority=2)),
        201, AppointmentResponse)
    check("appointment is scheduled", appointment.status == "scheduled")

    incident = answer("incident posted", incidents_create.sync_detailed(
        client=client, body=CreateIncident(
            title="Cyberattaque", started_at="2022-05-14T00:00:00+02:00",
            postpone_until="2022-06-06T00:00:00+02:00", sites=["CLI"])),
        201, IncidentResponse)
    check("the incident postponed the appointment", incident.postponed == 1)
    detail = answer("appointment read", appointments_read.sync_detailed(
        appointment.id, client=client), 200, AppointmentDetail)
    check("it is postponed", detail.status == "postponed")

    call = CreateCall(reason="appointment_status", outcome="informed", patient_id=patient.id,
                      appointment_id=appointment.id, duration_seconds=184)
    key = str(uuid.uuid4())
    first = answer("call logged", calls_create.sync_detailed(
        client=client, body=call, idempotency_key=key), 201, CallResponse)
    again = answer("the same call again", calls_create.sync_detailed(
        client=client, body=call, idempotency_key=key), 200, CallResponse)
    check("one call for one key", first.id == again.id)

    stats = answer("call statistics", calls_stats.sync_detailed(client=client, bucket="day"),
                   200, CallStats)
    check("statistics count the call once", stats.total == 1)

    listed = answer("contact list (json)", contact_list_export.sync_detailed(
        client=client, site="CLI"), 200, ContactList)
    check("one row, the postponed appointment", len(listed.items) == 1
          and isinstance(listed.items[0], ContactListItem)
          and listed.items[0].appointment_id == appointment.id)
    csv = client.get_httpx_client().get("/api/v1/contact-list",
                                        params={"site": "CLI", "format": "csv"})
    check("contact list (csv): 200 text/csv", csv.status_code == 200
          and csv.headers["content-type"].startswith("text/csv"))
    check("contact list (csv): the header and one row",
          csv.text.startswith("appointment_id,priority,") and len(csv.text.splitlines()) == 2)

    rows = ("national_number,last_name,first_name,birth_date,phone,email,language,"
            "email_consent,site,service,kind,label,scheduled_at,priority,urgent,essential\n"
            ",Gobert,Luc,1949-02-11,,,fr,false,CLI,CLI-ORTHO,consultation,Suivi,"
            "2022-06-20 10:00,3,false,false\n")
    imported = answer("appointments imported (text/csv)", appointments_import.sync_detailed(
        client=client, body=File(payload=rows.encode(), mime_type="text/csv")),
        200, AppointmentImport)
    check("one appointment imported", imported.imported == 1)
    calls = ("received_at,caller_phone,national_number,reason,outcome,duration_seconds,notes\n"
             "2022-05-17 09:12,061 23 45 67,,reschedule_request,callback_scheduled,95,\n")
    imported = answer("calls imported (text/csv)", calls_import.sync_detailed(
        client=client, body=File(payload=calls.encode(), mime_type="text/csv")),
        200, CallImport)
    check("one call imported", imported.imported == 1)

    print(f"client_drive.checks={checks}")


if __name__ == "__main__":
    main()
