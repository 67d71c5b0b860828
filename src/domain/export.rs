//! A bulk export's life (FHIR `$export`, CONTRACT §4.10): `running` until its last file is
//! stored (`done`), unless it is cancelled (`DELETE`) or the instance making it stops (`failed`).

use super::Invalid;

text_enum!(
    /// Where a bulk export stands.
    ExportStatus {
        Running => "running",
        Done => "done",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);
