// A few lines of progressive enhancement; every page works without them.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // The language switch comes back to the page it was used on, without the message of a form
  // sent before (it was said once).
  for (const here of document.querySelectorAll("input[data-here]")) {
    const query = new URLSearchParams(location.search);
    for (const once of ["done", "at", "next", "queued", "to_contact"]) query.delete(once);
    const rest = query.toString();
    here.value = location.pathname + (rest ? "?" + rest : "");
  }
  // A list of services follows the site chosen beside it: only that site's services show.
  for (const services of document.querySelectorAll("select[data-follows]")) {
    const site = document.getElementById(services.dataset.follows);
    if (!site) continue;
    const follow = () => {
      for (const group of services.querySelectorAll("optgroup[data-site]")) {
        const mine = !site.value || group.dataset.site === site.value;
        group.hidden = !mine;
        group.disabled = !mine;
      }
      const chosen = services.selectedOptions[0];
      if (chosen && chosen.parentElement.disabled) services.value = "";
    };
    site.addEventListener("change", follow);
    follow();
  }
  for (const button of document.querySelectorAll("[data-print]")) {
    button.addEventListener("click", () => window.print());
  }
  for (const link of document.querySelectorAll("a[data-back]")) {
    if (history.length > 1) {
      link.addEventListener("click", (e) => { e.preventDefault(); history.back(); });
    }
  }
  // The screen pop: the call just answered shows up, and fills the call form, as it happens.
  // A field the agent typed in is left alone; without script a refresh shows the same.
  const pop = document.getElementById("pop");
  const callForm = document.getElementById("call-form");
  if (pop && callForm && window.EventSource) {
    const field = (id) => document.getElementById(id);
    const hidden = (id, value) => { const f = field(id); if (f) f.value = value; };
    const offered = (id, value) => {
      const f = field(id);
      if (!f || (f.value !== "" && f.value !== (f.dataset.popped || ""))) return;
      f.value = value;
      f.dataset.popped = value;
    };
    // Once the agent has typed into a form tied to one call, a pop of another call shows its
    // panel but leaves the form to the call being written up (its number, time, patient).
    let edited = false;
    callForm.addEventListener("input", () => { edited = true; });
    const boundElsewhere = (id) => {
      const f = field("phone_call_id");
      return edited && f && f.value !== "" && f.value !== id;
    };
    const stream = new EventSource("/agent/events?since=" + encodeURIComponent(pop.dataset.since || "none"));
    stream.addEventListener("open", () => { pop.dataset.live = "1"; });
    stream.addEventListener("pop", (e) => {
      const d = JSON.parse(e.data);
      pop.innerHTML = d.html;
      pop.hidden = false;
      if (boundElsewhere(d.phone_call_id)) return;
      if (field("phone_call_id") && field("phone_call_id").value !== d.phone_call_id) edited = false;
      hidden("phone_call_id", d.phone_call_id);
      hidden("received_at", d.received_at);
      offered("caller_phone", d.phone);
      offered("duration_minutes", d.duration_minutes);
      if (!("chosen" in callForm.dataset)) {
        hidden("patient_id", d.patient_id);
        const label = field("form-patient");
        if (label) label.textContent = d.patient_label;
      }
    });
    stream.addEventListener("clear", (e) => {
      const d = JSON.parse(e.data);
      pop.hidden = true;
      pop.replaceChildren();
      if (edited) return;
      hidden("phone_call_id", "");
      hidden("received_at", "");
      offered("caller_phone", "");
      offered("duration_minutes", "");
      if (!("chosen" in callForm.dataset)) {
        hidden("patient_id", "");
        const label = field("form-patient");
        if (label) label.textContent = d.patient_label;
      }
    });
  }
  // Enter sends the call form from any field (a select too); Ctrl+Enter from the notes.
  for (const form of document.querySelectorAll("form[data-enter-submits]")) {
    form.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" || e.isComposing) return;
      const t = e.target;
      if (t.tagName === "TEXTAREA" && !e.ctrlKey) return;
      if (t.tagName === "BUTTON" || t.tagName === "A") return;
      e.preventDefault();
      form.requestSubmit();
    });
  }
  // Back to a page sent from (the browser's cache): its forms can be sent again.
  window.addEventListener("pageshow", () => {
    for (const form of document.querySelectorAll("form[data-once]")) {
      delete form.dataset.sent;
      for (const b of form.querySelectorAll("button[type=submit]")) b.disabled = false;
    }
  });
  // One click, one send: the server also logs one call per form (its key).
  for (const form of document.querySelectorAll("form[data-once]")) {
    form.addEventListener("submit", (e) => {
      if (form.dataset.sent) { e.preventDefault(); return; }
      form.dataset.sent = "1";
      for (const b of form.querySelectorAll("button[type=submit]")) b.disabled = true;
    });
  }
});
