//! The emails to patients of CONTRACT §4.7: which one, and where it stands in the outbox.

use super::Invalid;

text_enum!(
    /// The three emails.
    Template {
        AppointmentPostponed => "appointment_postponed",
        SiteReopened => "site_reopened",
        AppointmentRescheduled => "appointment_rescheduled",
    }
);

text_enum!(
    /// `queued` until the worker sends it (`sent`) or gives up (`failed`).
    NotificationStatus {
        Queued => "queued",
        Sent => "sent",
        Failed => "failed",
    }
);
