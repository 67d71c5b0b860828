//! `/api/v1/users`: accounts and their tokens (admins only).

use actix_web::{delete, get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{utc, ApiJson, ApiQuery, Page, PageRequest};
use crate::auth::{perm, Granted};
use crate::db::{self, users::Account};
use crate::domain::account::NewAccount;
use crate::domain::Faults;
use crate::domain::Role;
use crate::error::{AppError, AppResult, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    /// `admin`, `coordinator`, `secretary` or `agent`.
    #[schema(example = "secretary")]
    pub role: String,
    /// Service codes; required for secretaries, refused for other roles.
    #[serde(default)]
    pub services: Vec<String>,
    /// Days the token works (1 to 3650); without it, until the account is deleted.
    #[schema(example = 90)]
    pub expires_in_days: Option<i64>,
    /// The telephone extension the telephone system names when this person answers.
    #[schema(example = "201")]
    pub extension: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: String,
    pub name: String,
    pub role: String,
    pub services: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the token stops working (401 after); null: when the account is deleted.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the token was last used, to the minute; null: never.
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserCreated {
    pub id: String,
    pub name: String,
    pub role: String,
    pub services: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The API token, shown this once; only its hash is kept.
    pub token: String,
}

impl From<Account> for UserResponse {
    fn from(a: Account) -> Self {
        Self {
            id: a.id,
            name: a.name,
            role: a.role.as_str().to_string(),
            services: a.services,
            created_at: utc(a.created_at),
            expires_at: a.expires_at.map(utc),
            last_used_at: a.last_used_at.map(utc),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Create an account and its token.
#[utoipa::path(
    operation_id = "users_create",
    tag = "users",
    request_body = CreateUser,
    responses(
        (status = 201, body = UserCreated),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/users")]
pub async fn create(
    caller: Granted<perm::ManageUsers>,
    state: web::Data<AppState>,
    body: ApiJson<CreateUser>,
) -> AppResult<HttpResponse> {
    let body = body.parse().await?;
    let mut fields = Faults::default();
    let new = fields.include(NewAccount::parse(&body.name, &body.role, &body.services));
    let expires = fields.check_opt(
        "expires_in_days",
        body.expires_in_days,
        crate::domain::account::parse_expires_in,
    );
    let extension = fields.check_opt(
        "extension",
        body.extension.as_deref(),
        crate::domain::account::parse_extension,
    );
    let ((new, expires_in_days), extension) = fields.finish(new.zip(expires).zip(extension))?;
    let new = NewAccount {
        expires_in_days,
        extension,
        ..new
    };
    let caller = caller.caller;
    let created = state
        .db
        .write(move |conn| crate::service::users::create_account(conn, &caller, new))
        .await?;
    let a = created.account;
    Ok(HttpResponse::Created().json(UserCreated {
        id: a.id,
        name: a.name,
        role: a.role.as_str().to_string(),
        services: a.services,
        created_at: utc(a.created_at),
        expires_at: a.expires_at.map(utc),
        token: created.token,
    }))
}

/// List live accounts, oldest first.
#[utoipa::path(
    operation_id = "users_list",
    tag = "users",
    params(UserListQuery),
    responses(
        (status = 200, body = Page<UserResponse>),
        (status = 401, body = Problem), (status = 403, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/users")]
pub async fn list(
    _caller: Granted<perm::ManageUsers>,
    state: web::Data<AppState>,
    query: ApiQuery<UserListQuery>,
) -> AppResult<web::Json<Page<UserResponse>>> {
    let page = {
        let q = query.parse()?;
        PageRequest::parse(q.limit, q.cursor)?
    };
    let (after, fetch) = (page.cursor.clone(), page.fetch());
    let rows = state
        .db
        .read(move |conn| db::users::list(conn, after.as_deref(), fetch).map_err(AppError::from))
        .await?;
    Ok(web::Json(page.page(
        rows,
        |a| a.id.clone(),
        UserResponse::from,
    )))
}

/// Delete an account: its token stops working at once.
#[utoipa::path(
    operation_id = "users_delete",
    tag = "users",
    params(("id" = String, Path, description = "account id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the last admin cannot be deleted")
    ),
    security(("bearer" = []))
)]
#[delete("/users/{id}")]
pub async fn delete(
    caller: Granted<perm::ManageUsers>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let caller = caller.caller;
    // Its token must not be trusted from the cache once the deletion has committed, even if
    // this request is dropped while it waits for the commit (a client gone, a shutdown): the
    // cache is emptied when the guard goes, whichever way.
    let _forget = ForgetTokens(state.clone());
    state
        .db
        .write(move |conn| {
            // Two admins deleting each other at once must not leave none.
            db::lock_for_write(conn, "users")?;
            let user = db::users::find_live(conn, &id)?
                .ok_or_else(|| AppError::NotFound("no such account".into()))?;
            if user.role == Role::Admin && db::users::count_live_admins(conn)? <= 1 {
                return Err(AppError::Conflict(
                    "the last admin account cannot be deleted".into(),
                ));
            }
            db::users::soft_delete(conn, &id, crate::domain::now())?;
            crate::audit::record(
                conn,
                &caller,
                "user.delete",
                Some(&format!("user:{id}")),
                serde_json::json!({ "role": user.role }),
            )?;
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Empties the token cache when dropped (after a deletion's commit, or with its request).
struct ForgetTokens(web::Data<AppState>);

impl Drop for ForgetTokens {
    fn drop(&mut self) {
        self.0.tokens.forget_all();
    }
}
