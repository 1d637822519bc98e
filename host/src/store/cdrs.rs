//! Call detail records: one row per call, read by the API with filters and cursor pagination
//! (newest first). The call manager writes a `running` record when a call starts and the final
//! one when it ends, in batches through [`super::CdrWriter`] ([`Store::write_cdrs`]); a host
//! that stopped without ending its calls marks their records `interrupted` when it starts
//! again ([`Store::interrupt_running_cdrs`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{MAX_TEXT_CHARS, Store, StoreError, check_text, valid_tenant_id};

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Disposition {
    Answered,
    Busy,
    NoAnswer,
    Failed,
    Rejected,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no-answer",
            Disposition::Failed => "failed",
            Disposition::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "answered" => Some(Disposition::Answered),
            "busy" => Some(Disposition::Busy),
            "no-answer" => Some(Disposition::NoAnswer),
            "failed" => Some(Disposition::Failed),
            "rejected" => Some(Disposition::Rejected),
            _ => None,
        }
    }
}

/// Where a call's record stands.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum CdrState {
    /// The call is in progress: the record written at its start.
    Running,
    /// The call ended; the record is final.
    #[default]
    Ended,
    /// The call was in progress on a host that stopped without ending it (it crashed or was
    /// killed); marked when that host started again.
    Interrupted,
}

impl CdrState {
    pub fn as_str(self) -> &'static str {
        match self {
            CdrState::Running => "running",
            CdrState::Ended => "ended",
            CdrState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(CdrState::Running),
            "ended" => Some(CdrState::Ended),
            "interrupted" => Some(CdrState::Interrupted),
            _ => None,
        }
    }

    /// How final the state is: a record is replaced only by one at least as final, so a
    /// late `running` never overwrites the end of its call.
    fn rank(self) -> u8 {
        match self {
            CdrState::Running => 0,
            CdrState::Interrupted => 1,
            CdrState::Ended => 2,
        }
    }
}

/// The same ranking in SQL, for the upsert's guard.
fn rank_sql(column: &str) -> String {
    format!("(CASE {column} WHEN 'running' THEN 0 WHEN 'interrupted' THEN 1 ELSE 2 END)")
}

/// The longest `ended_by`, in bytes.
pub const MAX_ENDED_BY: usize = 32;

/// Whether `s` is a short token as `ended_by` takes: 1 to [`MAX_ENDED_BY`] of `a-z`, `0-9`,
/// `-`, `_`.
pub fn valid_ended_by(s: &str) -> bool {
    (1..=MAX_ENDED_BY).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The longest record id, in bytes.
pub const MAX_CDR_ID: usize = 128;

/// One call's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cdr {
    pub id: String,
    pub tenant_id: String,
    pub from_number: String,
    pub to_number: String,
    /// `inbound` (from a trunk or phone to the tenant) or `outbound`.
    pub direction: String,
    pub disposition: Disposition,
    /// The final SIP status, when there was one.
    pub sip_status: Option<i64>,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub duration_ms: i64,
    pub trunk: Option<String>,
    /// `name@version` of the plugin that routed the call.
    pub plugin: Option<String>,
    pub hangup_cause: Option<String>,
    /// The SIP Call-ID of the caller's leg.
    #[serde(default)]
    pub call_id: Option<String>,
    /// The calling SIP user, when one of the tenant's phones placed the call.
    #[serde(default)]
    pub sip_user: Option<String>,
    /// The reason phrase of the final SIP status.
    #[serde(default)]
    pub sip_reason: Option<String>,
    /// Who ended the call: `caller`, `callee`, `plugin`, `idle`, `switch`, `limit` ... (a
    /// short token).
    #[serde(default)]
    pub ended_by: Option<String>,
    /// The outbound target that answered (a number, SIP URI or SIP user).
    #[serde(default)]
    pub answered_target: Option<String>,
    /// The host that ran the call.
    #[serde(default)]
    pub host_id: Option<String>,
    /// `running` while the call is in progress, `ended` once it ended, `interrupted` when
    /// its host stopped before it ended.
    #[serde(default)]
    pub state: CdrState,
}

impl Cdr {
    /// The free-text fields, which may hold what came off the network (numbers, Call-ID,
    /// reason phrases). [`Cdr::texts_mut`] and [`Cdr::optional_texts_mut`] name the same.
    fn texts(&self) -> impl Iterator<Item = &str> {
        [&self.from_number, &self.to_number, &self.direction]
            .into_iter()
            .map(String::as_str)
            .chain(
                [
                    &self.trunk,
                    &self.plugin,
                    &self.hangup_cause,
                    &self.call_id,
                    &self.sip_user,
                    &self.sip_reason,
                    &self.answered_target,
                    &self.host_id,
                ]
                .into_iter()
                .flatten()
                .map(String::as_str),
            )
    }

    fn texts_mut(&mut self) -> [&mut String; 3] {
        [
            &mut self.from_number,
            &mut self.to_number,
            &mut self.direction,
        ]
    }

    fn optional_texts_mut(&mut self) -> [&mut Option<String>; 8] {
        [
            &mut self.trunk,
            &mut self.plugin,
            &mut self.hangup_cause,
            &mut self.call_id,
            &mut self.sip_user,
            &mut self.sip_reason,
            &mut self.answered_target,
            &mut self.host_id,
        ]
    }

    /// Refuses a record the database could not store, or should not: an id or tenant that
    /// is not one, text over [`MAX_TEXT_CHARS`] characters or with control characters (NUL
    /// cannot even be stored on PostgreSQL), an `ended_by` that is not a short token.
    pub fn check(&self) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::Invalid(m));
        if self.id.is_empty() || self.id.len() > MAX_CDR_ID || self.id.chars().any(char::is_control)
        {
            return bad(format!(
                "a call record's id must be 1-{MAX_CDR_ID} bytes without control characters"
            ));
        }
        if !valid_tenant_id(&self.tenant_id) {
            return bad(format!("call record {}: bad tenant id", self.id));
        }
        for t in self.texts() {
            check_text("a call record's text", t)?;
        }
        if let Some(e) = &self.ended_by
            && !valid_ended_by(e)
        {
            return bad(format!(
                "call record {}: ended_by must be 1-{MAX_ENDED_BY} of a-z, 0-9, '-', '_'",
                self.id
            ));
        }
        Ok(())
    }

    /// Makes the free text storable whatever the network put in it: control characters
    /// become U+FFFD and text is cut at [`MAX_TEXT_CHARS`] characters; an `ended_by` that is
    /// not a token is dropped. A call's record is worth more than one mangled field. The id
    /// and tenant are the switch's own and are left for [`Cdr::check`] to judge.
    pub fn make_storable(&mut self) {
        fn clean(s: &mut String) {
            if s.chars().count() > MAX_TEXT_CHARS || s.chars().any(char::is_control) {
                *s = s
                    .chars()
                    .take(MAX_TEXT_CHARS)
                    .map(|c| if c.is_control() { '\u{fffd}' } else { c })
                    .collect();
            }
        }
        for t in self.texts_mut() {
            clean(t);
        }
        for t in self.optional_texts_mut().into_iter().flatten() {
            clean(t);
        }
        if self.ended_by.as_deref().is_some_and(|e| !valid_ended_by(e)) {
            tracing::warn!(cdr = %self.id, ended_by = ?self.ended_by,
                "a call record's ended_by is not a short token; left out");
            self.ended_by = None;
        }
    }
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct CdrFilter {
    /// Calls started at or after (epoch ms).
    pub since: Option<i64>,
    /// Calls started before (epoch ms).
    pub until: Option<i64>,
    /// Calls from or to this number.
    pub number: Option<String>,
    pub disposition: Option<Disposition>,
    pub state: Option<CdrState>,
    /// Where the previous page ended ([`CdrPage::next`], parsed).
    pub cursor: Option<CdrCursor>,
    /// Page size, 1 to 500.
    pub limit: u32,
}

/// One page of records and the cursor for the next, if there is more.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CdrPage {
    pub items: Vec<Cdr>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next: Option<String>,
}

/// The largest page.
pub const MAX_PAGE: u32 = 500;

const COLUMNS: &str = "id, tenant_id, from_number, to_number, direction, disposition, sip_status, \
     started_at, answered_at, ended_at, duration_ms, trunk, plugin, hangup_cause, call_id, \
     sip_user, sip_reason, ended_by, answered_target, host_id, state";
/// How many columns [`COLUMNS`] names: the placeholders of one row.
const COLUMN_COUNT: usize = 21;

fn cdr(row: &AnyRow) -> Result<Cdr, sqlx::Error> {
    let disposition: String = row.try_get("disposition")?;
    Ok(Cdr {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        from_number: row.try_get("from_number")?,
        to_number: row.try_get("to_number")?,
        direction: row.try_get("direction")?,
        disposition: Disposition::parse(&disposition).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "disposition".into(),
            source: format!("unknown disposition {disposition:?}").into(),
        })?,
        sip_status: row.try_get("sip_status")?,
        started_at: row.try_get("started_at")?,
        answered_at: row.try_get("answered_at")?,
        ended_at: row.try_get("ended_at")?,
        duration_ms: row.try_get("duration_ms")?,
        trunk: row.try_get("trunk")?,
        plugin: row.try_get("plugin")?,
        hangup_cause: row.try_get("hangup_cause")?,
        call_id: row.try_get("call_id")?,
        sip_user: row.try_get("sip_user")?,
        sip_reason: row.try_get("sip_reason")?,
        ended_by: row.try_get("ended_by")?,
        answered_target: row.try_get("answered_target")?,
        host_id: row.try_get("host_id")?,
        state: {
            let state: String = row.try_get("state")?;
            CdrState::parse(&state).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: "state".into(),
                source: format!("unknown state {state:?}").into(),
            })?
        },
    })
}

/// Binds one record's values, in [`COLUMNS`] order.
fn bind_cdr<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    c: &'q Cdr,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(&c.id)
        .bind(&c.tenant_id)
        .bind(&c.from_number)
        .bind(&c.to_number)
        .bind(&c.direction)
        .bind(c.disposition.as_str())
        .bind(c.sip_status)
        .bind(c.started_at)
        .bind(c.answered_at)
        .bind(c.ended_at)
        .bind(c.duration_ms)
        .bind(&c.trunk)
        .bind(&c.plugin)
        .bind(&c.hangup_cause)
        .bind(&c.call_id)
        .bind(&c.sip_user)
        .bind(&c.sip_reason)
        .bind(&c.ended_by)
        .bind(&c.answered_target)
        .bind(&c.host_id)
        .bind(c.state.as_str())
}

/// `($1, ..., $21), ($22, ...)`: the placeholders of `rows` rows.
fn placeholders(rows: usize) -> String {
    let mut sql = String::with_capacity(rows * COLUMN_COUNT * 5);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..COLUMN_COUNT {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * COLUMN_COUNT + c + 1));
        }
        sql.push(')');
    }
    sql
}

/// The upsert of `rows` records: a new id is inserted; a known one is replaced only by a
/// record of the same tenant whose state is at least as final ([`CdrState::rank`]).
fn upsert_sql(rows: usize) -> String {
    let updates: Vec<String> = COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| !matches!(*c, "id" | "tenant_id"))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO cdrs ({COLUMNS}) VALUES {} ON CONFLICT (id) DO UPDATE SET {} \
         WHERE cdrs.tenant_id = excluded.tenant_id AND {} <= {}",
        placeholders(rows),
        updates.join(", "),
        rank_sql("cdrs.state"),
        rank_sql("excluded.state"),
    )
}

/// Rows per upsert statement: a batch is written as statements of 64, 32, 16 ... 1 rows
/// (64 x 21 = 1,344 placeholders, far under SQLite's 32,766 and PostgreSQL's 65,535), so
/// there are only seven statement shapes for each connection to prepare and keep.
const ROWS_PER_STATEMENT: usize = 64;

/// Where a page of records ended: the last row's `started_at` and id. On the wire it is
/// hex-encoded (`started_at:id`), so it is opaque and URL-safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrCursor {
    started_at: i64,
    id: String,
}

impl CdrCursor {
    fn encode(started_at: i64, id: &str) -> String {
        hex::encode(format!("{started_at}:{id}"))
    }

    /// Parses a cursor this API gave; none for anything else (bad hex, not UTF-8, no
    /// timestamp, or a control character, which no record id holds and PostgreSQL text
    /// cannot even compare with when it is NUL).
    pub fn parse(cursor: &str) -> Option<CdrCursor> {
        let text = String::from_utf8(hex::decode(cursor).ok()?).ok()?;
        let (ts, id) = text.split_once(':')?;
        if id.chars().any(char::is_control) {
            return None;
        }
        Some(CdrCursor {
            started_at: ts.parse().ok()?,
            id: id.to_string(),
        })
    }
}

impl Store {
    /// Inserts one record; an existing id is a conflict. (The call manager writes through
    /// [`Store::write_cdrs`].)
    pub async fn insert_cdr(&self, c: &Cdr) -> Result<(), StoreError> {
        c.check()?;
        let sql = format!("INSERT INTO cdrs ({COLUMNS}) VALUES {}", placeholders(1));
        bind_cdr(sqlx::query(sqlx::AssertSqlSafe(sql)), c)
            .execute(self.writer())
            .await
            .map_err(StoreError::unique("cdr"))?;
        Ok(())
    }

    /// Writes a batch of records in one transaction: each is inserted, or replaces the
    /// record of the same id unless that one is more final (`ended` over `interrupted` over
    /// `running`), so a call's end record wins whichever order its records arrive in, in one
    /// batch or several. Every record is checked first ([`Cdr::check`]); one that fails it
    /// refuses the whole batch, with nothing written.
    pub async fn write_cdrs(&self, batch: &[Cdr]) -> Result<(), StoreError> {
        for c in batch {
            c.check()?;
        }
        // One statement may not touch a row twice (PostgreSQL refuses it): of the records of
        // one id, the most final is kept, the latest of those if several are as final.
        let mut best: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
        for (i, c) in batch.iter().enumerate() {
            best.entry(c.id.as_str())
                .and_modify(|j| {
                    if c.state.rank() >= batch[*j].state.rank() {
                        *j = i;
                    }
                })
                .or_insert(i);
        }
        let mut keep: Vec<usize> = best.into_values().collect();
        keep.sort_unstable();
        let rows: Vec<&Cdr> = keep.iter().map(|&i| &batch[i]).collect();
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let mut rest = &rows[..];
        while !rest.is_empty() {
            // The largest power of two, at most ROWS_PER_STATEMENT, that fits.
            let n = ROWS_PER_STATEMENT.min(1 << rest.len().ilog2());
            let (chunk, tail) = rest.split_at(n);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(upsert_sql(n)));
            for c in chunk {
                q = bind_cdr(q, c);
            }
            q.execute(&mut *tx).await?;
            rest = tail;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks `host_id`'s records still `running` as `interrupted`: that host is starting,
    /// so none of its calls is in progress any more. Each ends at `now_ms` with
    /// `hangup_cause` `host-restart` and `ended_by` `switch`; its duration runs from its
    /// answer (0 if never answered) and its disposition becomes `answered` or `failed`.
    /// Returns how many records it marked.
    pub async fn interrupt_running_cdrs(
        &self,
        host_id: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE cdrs SET state = 'interrupted', ended_at = $2, hangup_cause = 'host-restart', \
             ended_by = 'switch', \
             duration_ms = CASE WHEN answered_at IS NOT NULL AND answered_at < $2 \
                 THEN $2 - answered_at ELSE 0 END, \
             disposition = CASE WHEN answered_at IS NULL THEN 'failed' ELSE 'answered' END \
             WHERE host_id = $1 AND state = 'running'",
        )
        .bind(host_id)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// A tenant's records, newest first.
    ///
    /// The statement names only the filters given (one of 64 shapes, each prepared once per
    /// connection), so the planner walks the `(tenant_id, started_at, id)` index backwards and
    /// stops at the page's end. A single statement with `$n IS NULL OR ...` for every filter
    /// kept PostgreSQL's generic plan from using the index: it sorted all of a tenant's rows
    /// for every page (2.3 ms against 0.05 ms for 10,000 rows, BENCHMARKS.md).
    pub async fn cdrs(&self, tenant: &str, f: &CdrFilter) -> Result<CdrPage, StoreError> {
        let limit = f.limit.clamp(1, MAX_PAGE);
        let mut q = Filter::new(format!("SELECT {COLUMNS} FROM cdrs WHERE tenant_id = $1"));
        q.args.push(Arg::Text(tenant));
        if let Some(since) = f.since {
            let p = q.arg(Arg::Int(since));
            q.sql.push_str(&format!(" AND started_at >= {p}"));
        }
        if let Some(until) = f.until {
            let p = q.arg(Arg::Int(until));
            q.sql.push_str(&format!(" AND started_at < {p}"));
        }
        if let Some(number) = &f.number {
            let p = q.arg(Arg::Text(number));
            q.sql
                .push_str(&format!(" AND (from_number = {p} OR to_number = {p})"));
        }
        if let Some(d) = f.disposition {
            let p = q.arg(Arg::Text(d.as_str()));
            q.sql.push_str(&format!(" AND disposition = {p}"));
        }
        if let Some(st) = f.state {
            let p = q.arg(Arg::Text(st.as_str()));
            q.sql.push_str(&format!(" AND state = {p}"));
        }
        if let Some(CdrCursor { started_at, id }) = &f.cursor {
            let (p_ts, p_id) = (q.arg(Arg::Int(*started_at)), q.arg(Arg::Text(id)));
            // A row comparison is an index bound on both databases.
            q.sql
                .push_str(&format!(" AND (started_at, id) < ({p_ts}, {p_id})"));
        }
        let p = q.arg(Arg::Int(i64::from(limit) + 1));
        q.sql
            .push_str(&format!(" ORDER BY started_at DESC, id DESC LIMIT {p}"));

        let mut query = sqlx::query(sqlx::AssertSqlSafe(q.sql));
        for arg in q.args {
            query = match arg {
                Arg::Int(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
            };
        }
        let mut rows = query.fetch_all(self.pool()).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let items: Vec<Cdr> = rows.iter().map(cdr).collect::<Result<_, _>>()?;
        let next = more
            .then(|| items.last().map(|c| CdrCursor::encode(c.started_at, &c.id)))
            .flatten();
        Ok(CdrPage { items, next })
    }
}

/// A statement built from the filters present, and its arguments in `$n` order.
struct Filter<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
}

enum Arg<'a> {
    Int(i64),
    Text(&'a str),
}

impl<'a> Filter<'a> {
    fn new(sql: String) -> Self {
        Self {
            sql,
            args: Vec::with_capacity(8),
        }
    }

    /// Adds an argument and returns its placeholder.
    fn arg(&mut self, arg: Arg<'a>) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Cdr {
        Cdr {
            id: "call-1".into(),
            tenant_id: "acme".into(),
            from_number: "+15550001".into(),
            to_number: "+15550100".into(),
            direction: "inbound".into(),
            disposition: Disposition::Answered,
            sip_status: Some(200),
            started_at: 1,
            answered_at: None,
            ended_at: None,
            duration_ms: 0,
            trunk: None,
            plugin: None,
            hangup_cause: None,
            call_id: Some("a84b4c76e66710@pc33.example.com".into()),
            sip_user: None,
            sip_reason: Some("OK".into()),
            ended_by: Some("caller".into()),
            answered_target: None,
            host_id: Some("host-1".into()),
            state: CdrState::Ended,
        }
    }

    #[test]
    fn records_are_checked_and_made_storable() {
        assert!(record().check().is_ok());
        let mut c = record();
        c.call_id = Some("nul\0inside".into());
        c.sip_reason = Some("é".repeat(MAX_TEXT_CHARS + 5));
        c.from_number = "line\r\nbreak".into();
        c.ended_by = Some("Not A Token".into());
        assert!(matches!(c.check(), Err(StoreError::Invalid(_))));
        c.make_storable();
        assert!(c.check().is_ok(), "{c:?}");
        assert_eq!(c.call_id.as_deref(), Some("nul\u{fffd}inside"));
        assert_eq!(
            c.sip_reason.as_ref().map(|r| r.chars().count()),
            Some(MAX_TEXT_CHARS)
        );
        assert_eq!(c.from_number, "line\u{fffd}\u{fffd}break");
        assert_eq!(c.ended_by, None);
        // The switch's own fields cannot be repaired, only refused.
        let mut c = record();
        c.tenant_id = "Bad Tenant".into();
        c.make_storable();
        assert!(c.check().is_err());
        let mut c = record();
        c.id = String::new();
        assert!(c.check().is_err());
        for ok in [
            "caller",
            "callee",
            "plugin",
            "idle",
            "switch",
            "limit",
            "max-duration_2",
        ] {
            assert!(valid_ended_by(ok), "{ok}");
        }
        for bad in ["", "Caller", "by caller", &"x".repeat(MAX_ENDED_BY + 1)] {
            assert!(!valid_ended_by(bad), "{bad}");
        }
    }

    #[test]
    fn the_upsert_names_every_column_and_guards_finality() {
        let sql = upsert_sql(2);
        assert_eq!(COLUMNS.split(',').count(), COLUMN_COUNT);
        assert!(sql.contains("($22, "), "{sql}");
        assert!(sql.ends_with(
            "WHERE cdrs.tenant_id = excluded.tenant_id AND (CASE cdrs.state WHEN 'running' THEN 0 \
             WHEN 'interrupted' THEN 1 ELSE 2 END) <= (CASE excluded.state WHEN 'running' THEN 0 \
             WHEN 'interrupted' THEN 1 ELSE 2 END)"
        ), "{sql}");
        assert!(
            !sql.contains("tenant_id = excluded.tenant_id,"),
            "the tenant never changes"
        );
        for s in [CdrState::Running, CdrState::Ended, CdrState::Interrupted] {
            assert_eq!(CdrState::parse(s.as_str()), Some(s));
        }
        assert!(CdrState::Running.rank() < CdrState::Interrupted.rank());
        assert!(CdrState::Interrupted.rank() < CdrState::Ended.rank());
    }

    #[test]
    fn cursor_round_trips() {
        let c = CdrCursor::encode(1_700_000_000_000, "call:1");
        assert_eq!(
            CdrCursor::parse(&c),
            Some(CdrCursor {
                started_at: 1_700_000_000_000,
                id: "call:1".into()
            })
        );
        assert_eq!(CdrCursor::parse("zz"), None);
        assert_eq!(CdrCursor::parse(&hex::encode("nocolon")), None);
        // "1:" and a NUL: PostgreSQL cannot compare text with NUL (it answered 500).
        assert_eq!(CdrCursor::parse("313a00"), None);
        assert_eq!(CdrCursor::parse(&hex::encode("x:call")), None);
    }
}
