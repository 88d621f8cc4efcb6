//! The one way the tool writes: to a disposable instance a drill created and will destroy.
//! The recovery rehearsal's writes and the user's invariant queries go through here, each
//! on the database's own driver, so every value a database returns (PostgreSQL's NUMERIC,
//! MySQL's DECIMAL) reads as what it is.

use serde::Serialize;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::types::BigDecimal;
use sqlx::{Executor, Row, TypeInfo, ValueRef};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    Text(String),
    Int(i64),
}

/// What an invariant query returned.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    /// An exact decimal (PostgreSQL NUMERIC, MySQL DECIMAL) that is not an integer within
    /// 64 bits, as the database's digits: never rounded through a float.
    Decimal(String),
    Text(String),
    Null,
}

impl Scalar {
    /// SQL truthiness: true, or a non-zero number. NULL and text are not.
    pub fn is_truthy(&self) -> bool {
        match self {
            Self::Bool(b) => *b,
            Self::Int(i) => *i != 0,
            Self::Float(f) => *f != 0.0,
            Self::Decimal(digits) => digits.bytes().any(|b| matches!(b, b'1'..=b'9')),
            Self::Text(_) | Self::Null => false,
        }
    }

    fn decimal(value: &BigDecimal) -> Self {
        if value.is_integer() {
            if let Ok(int) = value.with_scale(0).to_plain_string().parse::<i64>() {
                return Self::Int(int);
            }
        }
        Self::Decimal(value.to_plain_string())
    }

    fn unsigned(value: u64) -> Self {
        i64::try_from(value).map_or_else(|_| Self::Decimal(value.to_string()), Self::Int)
    }
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Decimal(digits) => f.write_str(digits),
            Self::Text(t) => write!(f, "{t:?}"),
            Self::Null => f.write_str("NULL"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("connect to the disposable instance {target}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the disposable instance {target} has a URL of no SQL driver the tool has")]
    UnknownDriver { target: String },
    #[error("execute {sql}")]
    Execute {
        sql: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("run check query {sql}")]
    Query {
        sql: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("run check query {sql}: it returned no row")]
    NoRow { sql: String },
    #[error(
        "run check query {sql}: its first column is of type {type_name}; a check returns a \
         boolean or a number"
    )]
    Unsupported { sql: String, type_name: String },
}

/// The instance's own driver, chosen by its URL.
enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// A writable connection to an instance this run created and will destroy: the recovery
/// rehearsal's only way to write. Nothing else in the tool can obtain one for a target the
/// user named, because only `drill` calls `connect`, with its own instance's URL.
pub struct DisposableWriter {
    pool: Pool,
}

/// `$sql` with `$params` bound in order, for whichever driver the call site compiles for.
macro_rules! bound {
    ($sql:expr, $params:expr) => {{
        let mut query = sqlx::query($sql);
        for param in $params {
            query = match param {
                Param::Text(text) => query.bind(text.clone()),
                Param::Int(int) => query.bind(*int),
            };
        }
        query
    }};
}

/// Runs `$body` with `$pool` bound to whichever driver's pool `$writer` holds: the same
/// code, compiled once per driver.
macro_rules! on_pool {
    ($writer:expr, $pool:ident => $body:expr) => {
        match &$writer.pool {
            Pool::Postgres($pool) => $body,
            Pool::MySql($pool) => $body,
            Pool::Sqlite($pool) => $body,
        }
    };
}

impl DisposableWriter {
    pub async fn connect(url: &str, target: &str) -> Result<Self, WriteError> {
        let connect = |source| WriteError::Connect {
            target: target.to_owned(),
            source,
        };
        let pool = if url.starts_with("postgres") {
            PgPoolOptions::new()
                .max_connections(1)
                // The restored data is the backup's: a function it planted in `public` must
                // not stand in for a built-in the rehearsal or a user's invariant calls.
                // pg_catalog first, pg_temp last; tables still resolve in the usual schemas.
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(sqlx::raw_sql(
                            "SET search_path = pg_catalog, \"$user\", public, pg_temp",
                        ))
                        .await?;
                        Ok(())
                    })
                })
                .connect(url)
                .await
                .map(Pool::Postgres)
                .map_err(connect)?
        } else if url.starts_with("mysql") || url.starts_with("mariadb") {
            MySqlPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .map(Pool::MySql)
                .map_err(connect)?
        } else if url.starts_with("sqlite") {
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .map(Pool::Sqlite)
                .map_err(connect)?
        } else {
            return Err(WriteError::UnknownDriver {
                target: target.to_owned(),
            });
        };
        Ok(Self { pool })
    }

    /// Executes one write; returns the rows it affected.
    pub async fn execute(&self, sql: &str, params: &[Param]) -> Result<u64, WriteError> {
        let done = on_pool!(self, pool => {
            bound!(sql, params).execute(pool).await.map(|done| done.rows_affected())
        });
        done.map_err(|source| WriteError::Execute {
            sql: sql.to_owned(),
            source,
        })
    }

    /// Executes `statements` in order, each with `params`, in one transaction (committed
    /// once the last one ran); returns the rows the last one affected. A decoupled record's
    /// recovery writes its data table and its metadata table together, as ScalarDB does.
    pub async fn execute_all(
        &self,
        statements: &[String],
        params: &[Param],
    ) -> Result<u64, WriteError> {
        if let [sql] = statements {
            return self.execute(sql, params).await;
        }
        let execute = |sql: &str| {
            let sql = sql.to_owned();
            move |source| WriteError::Execute { sql, source }
        };
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(execute("BEGIN"))?;
            let mut affected = 0;
            for sql in statements {
                affected = bound!(sql, params)
                    .execute(&mut *tx)
                    .await
                    .map_err(execute(sql))?
                    .rows_affected();
            }
            tx.commit().await.map_err(execute("COMMIT"))?;
            Ok(affected)
        })
    }

    /// Runs a user's invariant query and returns the first column of its first row.
    pub async fn scalar(&self, sql: &str) -> Result<Scalar, WriteError> {
        let query_error = |source| WriteError::Query {
            sql: sql.to_owned(),
            source,
        };
        let value = match &self.pool {
            Pool::Postgres(pool) => first(sqlx::query(sql).fetch_optional(pool).await, pg_value),
            Pool::MySql(pool) => first(sqlx::query(sql).fetch_optional(pool).await, mysql_value),
            Pool::Sqlite(pool) => first(sqlx::query(sql).fetch_optional(pool).await, sqlite_value),
        };
        match value {
            Ok(Some(Value::Scalar(scalar))) => Ok(scalar),
            Ok(Some(Value::Unsupported(type_name))) => Err(WriteError::Unsupported {
                sql: sql.to_owned(),
                type_name,
            }),
            Ok(None) => Err(WriteError::NoRow {
                sql: sql.to_owned(),
            }),
            Err(source) => Err(query_error(source)),
        }
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

/// The first column of a check's first row, or the name of a type no check can return.
enum Value {
    Scalar(Scalar),
    Unsupported(String),
}

fn first<R>(
    fetched: Result<Option<R>, sqlx::Error>,
    read: fn(&R) -> Result<Value, sqlx::Error>,
) -> Result<Option<Value>, sqlx::Error> {
    fetched?.as_ref().map(read).transpose()
}

fn pg_value(row: &PgRow) -> Result<Value, sqlx::Error> {
    let raw = row.try_get_raw(0)?;
    if raw.is_null() {
        return Ok(Value::Scalar(Scalar::Null));
    }
    let type_name = raw.type_info().name().to_owned();
    Ok(Value::Scalar(match type_name.as_str() {
        "BOOL" => Scalar::Bool(row.try_get(0)?),
        "INT2" => Scalar::Int(row.try_get::<i16, _>(0)?.into()),
        "INT4" => Scalar::Int(row.try_get::<i32, _>(0)?.into()),
        "INT8" => Scalar::Int(row.try_get(0)?),
        "FLOAT4" => Scalar::Float(row.try_get::<f32, _>(0)?.into()),
        "FLOAT8" => Scalar::Float(row.try_get(0)?),
        "NUMERIC" => {
            let value: BigDecimal = row.try_get(0)?;
            // sqlx reads NUMERIC's digits but not its display scale (12.50 comes back as
            // 12.5000); the binary value's header carries it (ndigits, weight, sign, dscale).
            let scale = raw
                .as_bytes()
                .ok()
                .and_then(|bytes| bytes.get(6..8))
                .map(|dscale| i64::from(u16::from_be_bytes([dscale[0], dscale[1]])));
            Scalar::decimal(&scale.map_or(value.clone(), |scale| value.with_scale(scale)))
        }
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Scalar::Text(row.try_get(0)?),
        _ => return Ok(Value::Unsupported(type_name)),
    }))
}

fn mysql_value(row: &MySqlRow) -> Result<Value, sqlx::Error> {
    let raw = row.try_get_raw(0)?;
    if raw.is_null() {
        return Ok(Value::Scalar(Scalar::Null));
    }
    let type_name = raw.type_info().name().to_owned();
    Ok(Value::Scalar(match type_name.as_str() {
        "BOOLEAN" => Scalar::Bool(row.try_get(0)?),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => Scalar::Int(row.try_get(0)?),
        name if name.ends_with(" UNSIGNED") => Scalar::unsigned(row.try_get(0)?),
        "FLOAT" => Scalar::Float(row.try_get::<f32, _>(0)?.into()),
        "DOUBLE" => Scalar::Float(row.try_get(0)?),
        "DECIMAL" => Scalar::decimal(&row.try_get::<BigDecimal, _>(0)?),
        "VARCHAR" | "CHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" => {
            Scalar::Text(row.try_get(0)?)
        }
        _ => return Ok(Value::Unsupported(type_name)),
    }))
}

/// SQLite types values, not columns: an expression's result is INTEGER, REAL, TEXT or BLOB.
fn sqlite_value(row: &SqliteRow) -> Result<Value, sqlx::Error> {
    let raw = row.try_get_raw(0)?;
    if raw.is_null() {
        return Ok(Value::Scalar(Scalar::Null));
    }
    let type_name = raw.type_info().name().to_owned();
    Ok(Value::Scalar(match type_name.as_str() {
        "INTEGER" => Scalar::Int(row.try_get(0)?),
        "REAL" => Scalar::Float(row.try_get(0)?),
        "TEXT" => Scalar::Text(row.try_get(0)?),
        _ => return Ok(Value::Unsupported(type_name)),
    }))
}
