//! Answers in the Postgres types: polars columns → fields and rows.

use futures::stream;
use pgwire::api::Type;
use pgwire::api::portal::Format as PgFormat;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use polars::prelude::{AnyValue, DataFrame, DataType, TimeUnit};
use std::sync::Arc;

use super::error;

/// The Postgres type a column is sent as.
fn pg_type(dt: &DataType) -> Type {
    match dt {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::Int32 | DataType::UInt16 => {
            Type::INT4
        }
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Type::INT8,
        DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Date => Type::DATE,
        DataType::Datetime(_, _) => Type::TIMESTAMP,
        _ => Type::VARCHAR,
    }
}

/// The fields of `df`'s columns, each in the format the client asked.
pub(super) fn fields(df: &DataFrame, format: &PgFormat) -> Vec<FieldInfo> {
    df.columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            FieldInfo::new(
                c.name().to_string(),
                None,
                None,
                pg_type(c.dtype()),
                format.format_for(i),
            )
        })
        .collect()
}

/// One value of a column declared `ty`.
fn encode(enc: &mut DataRowEncoder, ty: &Type, v: AnyValue<'_>) -> PgWireResult<()> {
    if matches!(v, AnyValue::Null) {
        return enc.encode_field(&None::<i64>);
    }
    let not_int = || error("22003", format!("{v} does not fit a bigint"));
    match *ty {
        Type::BOOL => enc.encode_field(&matches!(v, AnyValue::Boolean(true))),
        Type::INT4 => enc.encode_field(&v.extract::<i32>().ok_or_else(not_int)?),
        Type::INT8 => enc.encode_field(&v.extract::<i64>().ok_or_else(not_int)?),
        Type::FLOAT4 => enc.encode_field(&v.extract::<f32>().unwrap_or(f32::NAN)),
        Type::FLOAT8 => enc.encode_field(&v.extract::<f64>().unwrap_or(f64::NAN)),
        Type::DATE => {
            let AnyValue::Date(days) = v else {
                return enc.encode_field(&v.to_string());
            };
            // Unix day 0 is day 719,163 of the common era.
            let d = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163);
            enc.encode_field(&d)
        }
        Type::TIMESTAMP => {
            let AnyValue::Datetime(t, unit, _) = v else {
                return enc.encode_field(&v.to_string());
            };
            let dt = match unit {
                TimeUnit::Milliseconds => chrono::DateTime::from_timestamp_millis(t),
                TimeUnit::Microseconds => chrono::DateTime::from_timestamp_micros(t),
                TimeUnit::Nanoseconds => Some(chrono::DateTime::from_timestamp_nanos(t)),
            };
            enc.encode_field(&dt.map(|d| d.naive_utc()))
        }
        _ => match v {
            AnyValue::String(s) => enc.encode_field(&s),
            AnyValue::StringOwned(s) => enc.encode_field(&s.as_str()),
            other => enc.encode_field(&other.to_string()),
        },
    }
}

/// `df` as a query response.
pub(super) fn respond(mut df: DataFrame, format: &PgFormat) -> PgWireResult<Response> {
    df.rechunk_mut();
    let schema = Arc::new(fields(&df, format));
    let types: Vec<Type> = schema.iter().map(|f| f.datatype().clone()).collect();
    let mut enc = DataRowEncoder::new(schema.clone());
    let mut rows: Vec<PgWireResult<DataRow>> = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        for (c, ty) in df.columns().iter().zip(&types) {
            let v = c
                .get(i)
                .map_err(|e| error("XX000", format!("reading the answer: {e}")))?;
            encode(&mut enc, ty, v)?;
        }
        rows.push(Ok(enc.take_row()));
    }
    Ok(Response::Query(QueryResponse::new(
        schema,
        stream::iter(rows),
    )))
}

/// `SHOW name` → one row.
pub(super) fn show(name: &str, value: &str) -> PgWireResult<Response> {
    let schema = Arc::new(vec![FieldInfo::new(
        name.to_string(),
        None,
        None,
        Type::VARCHAR,
        FieldFormat::Text,
    )]);
    let mut enc = DataRowEncoder::new(schema.clone());
    enc.encode_field(&value)?;
    Ok(Response::Query(QueryResponse::new(
        schema,
        stream::iter(vec![Ok(enc.take_row())]),
    )))
}
