//! What the two HTTP front doors, the API (`routes`) and the pages (`web`), share beyond
//! actix: the answer that carries a download. Neither imports the other.

use actix_web::http::header;
use actix_web::HttpResponse;

use crate::service::contact_lists::Download;

/// A download's answer: streamed, as an attachment, never cached.
pub fn download(d: Download) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(d.content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", d.file_name),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(d.body)
}
