//! The arguments of the working-time functions: instants of any unit as nanoseconds (NULL
//! outside `[1970, 2100)`), and the calendar and employee of each row, resolved once for
//! literals and through a small cache for columns.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray, StringArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::{HashMap, Result, ScalarValue, exec_err};
use datafusion::logical_expr::ColumnarValue;

use super::NS_PER_S;
use crate::calendar::{Calendar, CalendarRegistry, MAX_NS, MIN_NS, Removal};

/// The employee of a fused call, and where it came from: a literal employee may get a table
/// of its own (see `EmployeeTable`); employees from a column, possibly thousands, keep the
/// smaller tables.
#[derive(Clone, Copy)]
pub(super) enum Employee<'a> {
    Literal(&'a Removal),
    FromColumn(&'a Removal),
}

impl<'a> Employee<'a> {
    pub(super) fn removal(self) -> &'a Removal {
        match self {
            Employee::Literal(r) | Employee::FromColumn(r) => r,
        }
    }
}

/// Nanoseconds of a timestamp argument and whether each is usable (not NULL, in range).
pub(super) fn instants(value: &ColumnarValue, n: usize) -> Result<(Vec<i64>, Vec<bool>)> {
    let array = value.to_array(n)?;
    fn convert<T: datafusion::arrow::datatypes::ArrowPrimitiveType<Native = i64>>(a: &PrimitiveArray<T>, per: i64) -> (Vec<i64>, Vec<bool>) {
        // Range check in the native unit, before multiplying, so nothing can overflow;
        // rows that will be NULL hold 0, a valid lookup position.
        let (lo, hi) = (MIN_NS / per, MAX_NS / per);
        let mut ns = Vec::with_capacity(a.len());
        let mut ok = Vec::with_capacity(a.len());
        for &v in a.values().iter() {
            let in_range = v >= lo && v < hi;
            ns.push(if in_range { v * per } else { 0 });
            ok.push(in_range);
        }
        if let Some(nulls) = a.nulls() {
            for (o, valid) in ok.iter_mut().zip(nulls.iter()) {
                *o &= valid;
            }
        }
        (ns, ok)
    }
    Ok(match array.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => convert(array.as_primitive::<TimestampNanosecondType>(), 1),
        DataType::Timestamp(TimeUnit::Microsecond, _) => convert(array.as_primitive::<TimestampMicrosecondType>(), 1_000),
        DataType::Timestamp(TimeUnit::Millisecond, _) => convert(array.as_primitive::<TimestampMillisecondType>(), 1_000_000),
        DataType::Timestamp(TimeUnit::Second, _) => convert(array.as_primitive::<TimestampSecondType>(), NS_PER_S),
        other => return exec_err!("expected a timestamp, got {other}"),
    })
}

/// Nanoseconds back to the argument's timestamp type.
pub(super) fn from_nanos(t: DataType, ns: Vec<i64>, valid: Vec<bool>) -> ArrayRef {
    let nulls = Some(NullBuffer::from(valid));
    match t {
        DataType::Timestamp(unit, tz) => {
            let per = match unit {
                TimeUnit::Nanosecond => 1,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Second => NS_PER_S,
            };
            let values: Vec<i64> = ns.into_iter().map(|v| v.div_euclid(per)).collect();
            match unit {
                TimeUnit::Nanosecond => Arc::new(PrimitiveArray::<TimestampNanosecondType>::new(values.into(), nulls).with_timezone_opt(tz)),
                TimeUnit::Microsecond => Arc::new(PrimitiveArray::<TimestampMicrosecondType>::new(values.into(), nulls).with_timezone_opt(tz)),
                TimeUnit::Millisecond => Arc::new(PrimitiveArray::<TimestampMillisecondType>::new(values.into(), nulls).with_timezone_opt(tz)),
                TimeUnit::Second => Arc::new(PrimitiveArray::<TimestampSecondType>::new(values.into(), nulls).with_timezone_opt(tz)),
            }
        }
        _ => Arc::new(PrimitiveArray::<TimestampNanosecondType>::new(ns.into(), nulls)),
    }
}

/// Resolves the calendar and employee of each row: once for literals, with a small cache
/// for columns.
pub(super) struct Resolver<'a> {
    registry: &'a CalendarRegistry,
    calendar: Source<Option<Arc<Calendar>>>,
    employee: Source<Option<String>>,
}

enum Source<T> {
    Fixed(T),
    /// Text per row, read in place (integer employee ids are cast to their decimal text).
    Column(StringArray),
}
fn text_column(value: &ColumnarValue, n: usize) -> Result<StringArray> {
    let array = value.to_array(n)?;
    let strings = datafusion::arrow::compute::cast(&array, &DataType::Utf8)?;
    Ok(strings.as_string::<i32>().clone())
}
fn scalar_text(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.clone(),
        ScalarValue::Int64(i) => i.map(|i| i.to_string()),
        ScalarValue::Dictionary(_, v) => scalar_text(v),
        _ => None,
    }
}

impl<'a> Resolver<'a> {
    pub(super) fn new(registry: &'a CalendarRegistry, calendar: Option<&ColumnarValue>, employee: Option<&ColumnarValue>, n: usize) -> Result<Self> {
        let calendar = match calendar {
            None => Source::Fixed(Some(Self::lookup(registry, registry.default_calendar())?)),
            Some(ColumnarValue::Scalar(s)) => match scalar_text(s) {
                Some(name) => Source::Fixed(Some(Self::lookup(registry, &name)?)),
                None => Source::Fixed(None),
            },
            Some(v) => Source::Column(text_column(v, n)?),
        };
        let employee = match employee {
            None => Source::Fixed(None),
            Some(ColumnarValue::Scalar(s)) => Source::Fixed(scalar_text(s)),
            Some(v) => Source::Column(text_column(v, n)?),
        };
        Ok(Self { registry, calendar, employee })
    }

    fn lookup(registry: &CalendarRegistry, name: &str) -> Result<Arc<Calendar>> {
        match registry.calendar(name) {
            Some(c) => Ok(Arc::clone(c)),
            None => exec_err!("unknown calendar '{name}'; known calendars: {}", registry.names().join(", ")),
        }
    }

    /// The calendar and removal table when both are literals (and the calendar not NULL).
    pub(super) fn fixed(&self) -> Option<(&Arc<Calendar>, Option<Arc<Removal>>)> {
        match (&self.calendar, &self.employee) {
            (Source::Fixed(Some(cal)), Source::Fixed(employee)) => {
                Some((cal, employee.as_deref().and_then(|e| cal.removal(self.registry, e))))
            }
            _ => None,
        }
    }

    /// Calls `f(row, calendar, removal)` for each row whose calendar is not NULL.
    pub(super) fn for_each(&self, n: usize, mut f: impl FnMut(usize, &Calendar, Option<&Removal>) -> Result<()>) -> Result<()> {
        // The common case: a literal calendar and employee, resolved once.
        if let (Source::Fixed(cal), Source::Fixed(employee)) = (&self.calendar, &self.employee) {
            let Some(cal) = cal else { return Ok(()) };
            let removal = employee.as_deref().and_then(|e| cal.removal(self.registry, e));
            for i in 0..n {
                f(i, cal, removal.as_deref())?;
            }
            return Ok(());
        }
        self.resolve(n)?.for_each(f)
    }

    /// The distinct (calendar, removal table) pairs of the rows, and each row's pair
    /// ([`Resolved::NO_CALENDAR`] for a NULL calendar). Each distinct name and pair is looked
    /// up once; rows often repeat the previous row's pair, which skips the hashing.
    pub(super) fn resolve(&self, n: usize) -> Result<Resolved> {
        let mut calendars: Vec<Arc<Calendar>> = Vec::new();
        // DataFusion's HashMap (foldhash): SipHash was a third of this path's time.
        let mut calendar_ids: HashMap<&str, usize> = HashMap::default();
        if let Source::Fixed(Some(c)) = &self.calendar {
            calendars.push(Arc::clone(c));
        }
        // A table per calendar without employee (`plain`), and per calendar and employee.
        let mut tables: Vec<(Arc<Calendar>, Option<Arc<Removal>>)> = Vec::new();
        let mut plain: HashMap<usize, u32> = HashMap::default();
        let mut with_employee: HashMap<(usize, &str), u32> = HashMap::default();
        let mut row_table = Vec::with_capacity(n);
        // The previous row's (calendar name, employee id) and table.
        type Previous<'s> = Option<((Option<&'s str>, Option<&'s str>), u32)>;
        let mut previous: Previous<'_> = None;
        for i in 0..n {
            let calendar_name = match &self.calendar {
                Source::Fixed(Some(_)) => None,
                Source::Fixed(None) => {
                    row_table.push(Resolved::NO_CALENDAR);
                    continue;
                }
                Source::Column(names) if names.is_null(i) => {
                    row_table.push(Resolved::NO_CALENDAR);
                    continue;
                }
                Source::Column(names) => Some(names.value(i)),
            };
            let employee = match &self.employee {
                Source::Fixed(e) => e.as_deref(),
                Source::Column(ids) => (!ids.is_null(i)).then(|| ids.value(i)),
            };
            let key = (calendar_name, employee);
            let table = match previous {
                Some((previous_key, table)) if previous_key == key => table,
                _ => {
                    let calendar_id = match calendar_name {
                        None => 0,
                        Some(name) => match calendar_ids.get(name) {
                            Some(id) => *id,
                            None => {
                                calendars.push(Self::lookup(self.registry, name)?);
                                calendar_ids.insert(name, calendars.len() - 1);
                                calendars.len() - 1
                            }
                        },
                    };
                    let cal = &calendars[calendar_id];
                    let mut add = |removal: Option<Arc<Removal>>| {
                        tables.push((Arc::clone(cal), removal));
                        (tables.len() - 1) as u32
                    };
                    let table = match employee {
                        None => *plain.entry(calendar_id).or_insert_with(|| add(None)),
                        Some(e) => *with_employee.entry((calendar_id, e)).or_insert_with(|| add(cal.removal(self.registry, e))),
                    };
                    previous = Some((key, table));
                    table
                }
            };
            row_table.push(table);
        }
        Ok(Resolved { tables, row_table })
    }
}

/// The calendars and employees of a batch's rows, resolved: see [`Resolver::resolve`].
pub(super) struct Resolved {
    pub(super) tables: Vec<(Arc<Calendar>, Option<Arc<Removal>>)>,
    pub(super) row_table: Vec<u32>,
}

impl Resolved {
    const NO_CALENDAR: u32 = u32::MAX;

    /// Whether the rows share few enough pairs (16 rows or more each on average) for
    /// gathering each pair's rows to pay off over resolving row by row.
    pub(super) fn few_tables(&self, n: usize) -> bool {
        n > 0 && self.tables.len() * 16 <= n
    }

    /// Calls `f(row, calendar, removal)` for each row whose calendar is not NULL.
    pub(super) fn for_each(&self, mut f: impl FnMut(usize, &Calendar, Option<&Removal>) -> Result<()>) -> Result<()> {
        for (i, table) in self.row_table.iter().enumerate() {
            if let Some((cal, removal)) = self.tables.get(*table as usize) {
                f(i, cal, removal.as_deref())?;
            }
        }
        Ok(())
    }
}
