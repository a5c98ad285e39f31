//! basketcast's hot path in native code: an invoice event's JSON -> the change it makes to its
//! customer's state (`stream.fast_op`, which documents the contract this must keep).
//!
//! One call reads the bytes, checks them against the input contract's limits, runs the line
//! pass of `stream.aggregates.invoice_op` and packs the script call, without building a Python
//! object per line (the decoder's objects, the line pass in Python and the packing were ~30 %
//! of the worker's CPU). Anything it is not sure of (a lone surrogate escape, an array for an
//! object, a time with an offset, a customer id such as "17850.0", a callback that raised, ...)
//! it answers with `None`, and the Python path decides: it may be stricter than the contract,
//! never more lenient.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fmt::Write as _;
use std::marker::PhantomData;

use foldhash::fast::RandomState;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event<'a> {
    #[serde(borrow)]
    invoice_id: Cow<'a, str>,
    #[serde(default)]
    customer_id: Option<CustomerId<'a>>,
    #[serde(borrow, default)]
    country: Option<Cow<'a, str>>,
    #[serde(borrow)]
    invoiced_at: Cow<'a, str>,
    #[serde(borrow, deserialize_with = "lines")]
    lines: Vec<Line<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow)]
    stock_code: Cow<'a, str>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    quantity: i64,
    unit_price: f64,
}

/// An invoice's lines into a vector sized for most invoices at once (a JSON array gives no
/// length up front: growing it from empty cost four allocations and copies).
fn lines<'de: 'a, 'a, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Line<'a>>, D::Error> {
    struct Lines;
    impl<'de> Visitor<'de> for Lines {
        type Value = Vec<Line<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of lines")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(FEW_LINES);
            while let Some(Object(line)) = seq.next_element::<Object<Line<'de>>>()? {
                out.push(line);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_seq(Lines)
}

/// A `T` read from a JSON object only: serde's derived structs also take an array of the fields
/// in order, which the contract refuses.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Fields(PhantomData))
            .map(Object)
    }
}

/// A customer id as the contract takes it: a string or an integer (never a float or a bool).
enum CustomerId<'a> {
    Text(Cow<'a, str>),
    Int(i64),
}

impl<'de: 'a, 'a> Deserialize<'de> for CustomerId<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Id;
        impl<'de> Visitor<'de> for Id {
            type Value = CustomerId<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CustomerId::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CustomerId::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(CustomerId::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(CustomerId::Int)
                    .map_err(|_| E::custom("id too large"))
            }
        }
        deserializer.deserialize_any(Id)
    }
}

/// Up to this many lines, a repeated line is found by comparing with the lines before it.
const FEW_LINES: usize = 32;

type LineKey<'a> = (&'a str, Option<&'a str>, i64, u64);

fn same_line(a: &Line, b: &Line) -> bool {
    a.quantity == b.quantity
        && a.unit_price == b.unit_price
        && a.stock_code == b.stock_code
        && a.description == b.description
}

/// The contract's limits (read from the pydantic fields by `stream.fast_op`).
#[derive(Clone, Copy)]
struct Limits {
    max_event_bytes: usize,
    invoice_id_len: usize,
    customer_id_len: usize,
    country_len: usize,
    stock_code_len: usize,
    description_len: usize,
    max_lines: usize,
    max_abs_quantity: i64,
    max_abs_price: f64,
    max_money: f64,
    /// money's micro-units per unit in the state (`stream.store.MICROS`)
    micros: f64,
}

/// Whether `x` lies within +-`limit` (never for a NaN).
fn within(x: f64, limit: f64) -> bool {
    x.abs() <= limit
}

/// Whether `s` has between `min` and `max` characters (Python's `len`: code points).
fn chars_within(s: &str, min: usize, max: usize) -> bool {
    if s.len() <= max && (min == 0 || s.len() >= min && s.is_ascii()) {
        return true; // bytes bound characters from above; ASCII: one byte each
    }
    let n = s.chars().count();
    n >= min && n <= max
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut v: i64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch seconds of a naive `YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}]` as `stream.aggregates.event_time`
/// gives them (exact microseconds / 10**6, correctly rounded); None for any other form, and
/// for years outside 1900-2200 (their microseconds would not all be exact as doubles).
fn event_time(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let micros_part = match b.len() {
        19 => 0,
        21..=26 if b[19] == b'.' => {
            let frac = &b[20..];
            digits(frac)? * 10_i64.pow(6 - frac.len() as u32)
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1900..=2200).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Some((secs * 1_000_000 + micros_part) as f64 / 1e6)
}

/// (code, description) as one unambiguous text (the code's length first), built in `buf`.
fn line_key(buf: &mut String, code: &str, description: Option<&str>) {
    buf.clear();
    let _ = write!(buf, "{}:{}", code.len(), code);
    match description {
        None => buf.push('N'),
        Some(d) => {
            buf.push('S');
            buf.push_str(d);
        }
    }
}

/// Reads invoice events into their state changes; see `stream.fast_op.op_reader`.
#[pyclass(module = "stream._fastop")]
struct OpReader {
    limits: Limits,
    /// stock code -> category, for the codes whose category does not depend on the description
    by_code: HashMap<String, i64, RandomState>,
    /// `line_key(code, description)` -> category, asked of `categories` once (bounded:
    /// `max_cached`)
    by_line: HashMap<String, i64, RandomState>,
    key: String,
    max_cached: usize,
    categories: Py<PyAny>,
    /// the script's keys as (text before, text after) the customer id, from
    /// `CustomerStore.keys`, and the script's SHA1, for the packed script call
    key_parts: Vec<(String, String)>,
    sha: String,
}

/// What `read` found: a guest, or a customer's state change.
enum Read<'a> {
    Guest,
    Op {
        customer_id: Cow<'a, str>,
        invoice_id: Cow<'a, str>,
        ts: f64,
        kind: &'static str,
        spend: f64,
        items: i64,
        cats: Vec<(i64, f64)>,
    },
}

impl OpReader {
    fn category(&mut self, py: Python<'_>, code: &str, description: Option<&str>) -> Option<i64> {
        if let Some(&cat) = self.by_code.get(code) {
            return Some(cat);
        }
        line_key(&mut self.key, code, description);
        if let Some(&cat) = self.by_line.get(self.key.as_str()) {
            return Some(cat);
        }
        // the Python side's answer (and its own caches); an exception: let Python decide
        let cat: i64 = self
            .categories
            .bind(py)
            .call1((code, description))
            .ok()?
            .extract()
            .ok()?;
        if self.by_line.len() >= self.max_cached {
            self.by_line.clear();
        }
        self.by_line.insert(self.key.clone(), cat);
        Some(cat)
    }

    fn parse<'a>(&mut self, py: Python<'_>, raw: &'a [u8]) -> Option<Read<'a>> {
        let lim = self.limits;
        if raw.len() > lim.max_event_bytes {
            return None;
        }
        // UTF-8 checked once for the whole text, not string by string
        let Object(ev): Object<Event<'a>> =
            serde_json::from_str(std::str::from_utf8(raw).ok()?).ok()?;
        if !chars_within(&ev.invoice_id, 1, lim.invoice_id_len)
            || !ev
                .country
                .as_deref()
                .is_none_or(|c| chars_within(c, 0, lim.country_len))
            || ev.lines.is_empty()
            || ev.lines.len() > lim.max_lines
        {
            return None;
        }
        let ts = event_time(&ev.invoiced_at)?;
        for line in &ev.lines {
            if !chars_within(&line.stock_code, 1, lim.stock_code_len)
                || !line
                    .description
                    .as_deref()
                    .is_none_or(|d| chars_within(d, 0, lim.description_len))
                || line.quantity.unsigned_abs() > lim.max_abs_quantity.unsigned_abs()
                || !within(line.unit_price, lim.max_abs_price)
            {
                return None;
            }
        }
        let customer_id = match ev.customer_id {
            None => return Some(Read::Guest),
            Some(CustomerId::Int(v)) => Cow::Owned(v.to_string()),
            Some(CustomerId::Text(s)) if s.is_empty() => return Some(Read::Guest),
            // "17850.0" and ids longer than the limit: the Python path's rules
            Some(CustomerId::Text(s)) if s.ends_with(".0") => return None,
            Some(CustomerId::Text(s)) => s,
        };
        if !chars_within(&customer_id, 0, lim.customer_id_len) {
            return None;
        }
        // the contract's is_cancellation / is_adjustment from the id's first character;
        // a non-ASCII one is left to Python's str.upper
        let head = *ev.invoice_id.as_bytes().first()?;
        if !head.is_ascii() {
            return None;
        }
        let head = head.to_ascii_uppercase();
        let adjustment = head == b'A';
        let mut total = 0.0_f64;
        let mut items: i64 = 0;
        let mut cats: Vec<(i64, f64)> = Vec::new();
        if !adjustment {
            // a repeated line once (equal to an earlier one in every field): compared with
            // the lines before it when they are few, else through a set
            let mut seen: Option<HashSet<LineKey, RandomState>> =
                (ev.lines.len() > FEW_LINES).then(HashSet::default);
            for (i, line) in ev.lines.iter().enumerate() {
                let price = line.unit_price;
                if price <= 0.0 {
                    continue; // (a line equal to it is skipped for the same reason)
                }
                let repeated = match seen.as_mut() {
                    None => ev.lines[..i].iter().any(|l| same_line(l, line)),
                    Some(set) => !set.insert((
                        &line.stock_code,
                        line.description.as_deref(),
                        line.quantity,
                        price.to_bits(),
                    )),
                };
                if repeated {
                    continue;
                }
                let cat = self.category(py, &line.stock_code, line.description.as_deref())?;
                if cat < 0 {
                    continue;
                }
                let amount = line.quantity as f64 * price;
                total += amount;
                items += line.quantity;
                match cats.iter_mut().find(|(c, _)| *c == cat) {
                    Some((_, spent)) => *spent += amount,
                    None => cats.push((cat, amount)),
                }
            }
        }
        let kind = match head {
            b'C' => "C",
            b'A' => "A",
            _ if total > 0.0 => "P",
            _ => "O",
        };
        if kind == "A" || kind == "O" {
            (total, items) = (0.0, 0);
            cats.clear();
        }
        // beyond the state's range for one invoice: the Python path dead-letters it
        if !within(total, lim.max_money) || cats.iter().any(|(_, a)| !within(*a, lim.max_money)) {
            return None;
        }
        Some(Read::Op {
            customer_id,
            invoice_id: ev.invoice_id,
            ts,
            kind,
            spend: total,
            items,
            cats,
        })
    }
}

/// Appends one RESP bulk string.
fn bulk(buf: &mut Vec<u8>, s: &[u8]) {
    buf.push(b'$');
    buf.extend_from_slice(s.len().to_string().as_bytes());
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(s);
    buf.extend_from_slice(b"\r\n");
}

impl OpReader {
    /// `InvoiceOp.argv`'s script call for an op without a score, packed as hiredis packs it
    /// (floats as Python's `repr`); None for a time `repr` would write with an exponent.
    #[allow(clippy::too_many_arguments)]
    fn packed(
        &self,
        customer_id: &str,
        invoice_id: &str,
        ts: f64,
        kind: &str,
        spend: f64,
        items: i64,
        cats: &str,
    ) -> Option<Vec<u8>> {
        if ts != 0.0 && !(1e-4..1e16).contains(&ts.abs()) {
            return None;
        }
        let mut time = format!("{ts}");
        if !time.contains('.') {
            time.push_str(".0");
        }
        let spend_micros = (spend * self.limits.micros).round_ties_even() as i64;
        let n_keys = self.key_parts.len();
        let mut buf = Vec::with_capacity(200 + n_keys * (40 + customer_id.len()) + cats.len());
        // EVALSHA, its SHA, the key count, the keys, then the 9 arguments of `InvoiceOp.argv`
        buf.extend_from_slice(format!("*{}\r\n", 3 + n_keys + 9).as_bytes());
        bulk(&mut buf, b"EVALSHA");
        bulk(&mut buf, self.sha.as_bytes());
        bulk(&mut buf, n_keys.to_string().as_bytes());
        for (before, after) in &self.key_parts {
            bulk(&mut buf, format!("{before}{customer_id}{after}").as_bytes());
        }
        bulk(&mut buf, invoice_id.as_bytes());
        bulk(&mut buf, time.as_bytes());
        bulk(&mut buf, kind.as_bytes());
        bulk(&mut buf, spend_micros.to_string().as_bytes());
        bulk(&mut buf, items.to_string().as_bytes());
        bulk(&mut buf, cats.as_bytes());
        bulk(&mut buf, b""); // no score
        bulk(&mut buf, b""); // no features
        bulk(&mut buf, b"0"); // no due time
        Some(buf)
    }
}

#[pymethods]
impl OpReader {
    #[new]
    #[pyo3(signature = (by_code, categories, limits, max_cached, key_parts, sha))]
    fn new(
        by_code: HashMap<String, i64>,
        categories: Py<PyAny>,
        limits: HashMap<String, f64>,
        max_cached: usize,
        key_parts: Vec<(String, String)>,
        sha: String,
    ) -> PyResult<Self> {
        let get = |name: &str| {
            limits.get(name).copied().ok_or_else(|| {
                pyo3::exceptions::PyKeyError::new_err(format!("limits: missing {name}"))
            })
        };
        let limits = Limits {
            max_event_bytes: get("max_event_bytes")? as usize,
            invoice_id_len: get("invoice_id_len")? as usize,
            customer_id_len: get("customer_id_len")? as usize,
            country_len: get("country_len")? as usize,
            stock_code_len: get("stock_code_len")? as usize,
            description_len: get("description_len")? as usize,
            max_lines: get("max_lines")? as usize,
            max_abs_quantity: get("max_abs_quantity")? as i64,
            max_abs_price: get("max_abs_price")?,
            max_money: get("max_money")?,
            micros: get("micros")?,
        };
        Ok(OpReader {
            limits,
            by_code: by_code.into_iter().collect(),
            by_line: HashMap::default(),
            key: String::new(),
            max_cached,
            categories,
            key_parts,
            sha,
        })
    }

    /// None: not read here (the Python path decides); `(None,)`: a valid guest invoice;
    /// else `(customer_id, invoice_id, ts, kind, spend, items, category_spend, packed)`:
    /// `packed` is the script call (EVALSHA) as hiredis packs it for an op without a score
    /// (`stream.store.CustomerStore.keys`, `InvoiceOp.argv`), or None.
    fn read<'py>(&mut self, py: Python<'py>, raw: &[u8]) -> PyResult<Option<Bound<'py, PyAny>>> {
        let found = match self.parse(py, raw) {
            None => return Ok(None),
            Some(found) => found,
        };
        let out = match found {
            Read::Guest => (None::<&str>,).into_pyobject(py)?.into_any(),
            Read::Op {
                customer_id,
                invoice_id,
                ts,
                kind,
                spend,
                items,
                cats,
            } => {
                let spent = PyDict::new(py);
                let mut arg = String::with_capacity(cats.len() * 14);
                for (cat, amount) in &cats {
                    spent.set_item(cat, amount)?;
                    if !arg.is_empty() {
                        arg.push(' ');
                    }
                    // micro-units as Python's round() gives them (halves to even)
                    let micros = (amount * self.limits.micros).round_ties_even() as i64;
                    let _ = write!(arg, "{cat} {micros}");
                }
                let packed = self
                    .packed(&customer_id, &invoice_id, ts, kind, spend, items, &arg)
                    .map(|p| PyBytes::new(py, &p));
                (
                    &*customer_id,
                    &*invoice_id,
                    ts,
                    kind,
                    spend,
                    items,
                    spent,
                    packed,
                )
                    .into_pyobject(py)?
                    .into_any()
            }
        };
        Ok(Some(out))
    }
}

#[pymodule]
fn _fastop(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<OpReader>()?;
    Ok(())
}
