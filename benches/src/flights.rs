//! A deterministic table shaped like a year of flights out of one city's airports (the
//! nycflights13 data set: 336,776 rows × 19 columns): a timetable of ~1,300 flights, each a
//! carrier, flight number, route and scheduled time flown on five days of the week, revised
//! every two weeks, flown with random delays by a random aircraft of the carrier's fleet; ~2.7%
//! cancelled (times and delays null).
//! Small integers, whole-minute delays as floats with nulls, short repetitive strings and a
//! timestamp, in date and actual departure order.
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int32Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Rows of the data set the issue measured: a year of flights.
pub const FLIGHTS_ROWS: usize = 336_776;
/// Rows per generated batch.
const BATCH_ROWS: usize = 65_536;

const CARRIERS: [&str; 16] = [
    "9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV",
];
const ORIGINS: [&str; 3] = ["EWR", "JFK", "LGA"];
/// Destinations served.
const DESTINATIONS: usize = 105;
/// Aircraft per carrier.
const FLEET: usize = 250;
const HOUR_US: i64 = 3_600_000_000;
/// 2013-01-01 in days since the epoch.
const FIRST_DAY: i64 = 15_706;
const MONTH_DAYS: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// The table's schema (nycflights13's columns).
pub fn flights_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("year", DataType::Int32, false),
        Field::new("month", DataType::Int32, false),
        Field::new("day", DataType::Int32, false),
        Field::new("dep_time", DataType::Int32, true),
        Field::new("sched_dep_time", DataType::Int32, false),
        Field::new("dep_delay", DataType::Float64, true),
        Field::new("arr_time", DataType::Int32, true),
        Field::new("sched_arr_time", DataType::Int32, false),
        Field::new("arr_delay", DataType::Float64, true),
        Field::new("carrier", DataType::Utf8, false),
        Field::new("flight", DataType::Int32, false),
        Field::new("tailnum", DataType::Utf8, true),
        Field::new("origin", DataType::Utf8, false),
        Field::new("dest", DataType::Utf8, false),
        Field::new("air_time", DataType::Float64, true),
        Field::new("distance", DataType::Float64, false),
        Field::new("hour", DataType::Float64, false),
        Field::new("minute", DataType::Float64, false),
        Field::new("time_hour", ts, false),
    ]))
}

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One scheduled daily flight.
struct Scheduled {
    carrier: usize,
    flight: i32,
    origin: usize,
    dest: usize,
    dep_minutes: i64,
    block_minutes: i64,
    distance: f64,
}

fn airport_code(i: usize) -> String {
    let b = |k: usize| char::from(b'A' + (k % 26) as u8);
    format!("{}{}{}", b(i * 7 + 3), b(i / 3 + 11), b(i * 13 + 5))
}

/// Minutes since midnight as the data set writes a clock time (hhmm).
fn hhmm(minutes: i64) -> i32 {
    let m = minutes.rem_euclid(24 * 60);
    (m / 60 * 100 + m % 60) as i32
}

/// (month, day of month) of a day of 2013 (0-based).
fn month_day(mut day: i64) -> (i32, i32) {
    for (m, len) in MONTH_DAYS.iter().enumerate() {
        if day < *len {
            return (m as i32 + 1, day as i32 + 1);
        }
        day -= len;
    }
    (12, 31)
}

/// The daily schedule, in scheduled departure order.
fn schedule(rng: &mut Rng, flights_per_day: usize) -> Vec<Scheduled> {
    let mut out: Vec<Scheduled> = (0..flights_per_day)
        .map(|_| {
            let carrier = rng.below(CARRIERS.len() as u64) as usize;
            let dest = rng.below(DESTINATIONS as u64) as usize;
            let distance = (100 + (dest * 211) % 2500) as f64;
            Scheduled {
                carrier,
                flight: 1 + rng.below(6000) as i32,
                origin: rng.below(ORIGINS.len() as u64) as usize,
                dest,
                dep_minutes: 5 * 60 + rng.below(18 * 60) as i64,
                block_minutes: (distance / 8.0) as i64 + 25 + 5 * rng.below(4) as i64,
                distance,
            }
        })
        .collect();
    out.sort_by_key(|f| f.dep_minutes);
    out
}

/// Days between timetable revisions.
const REVISION_DAYS: i64 = 14;

/// One flown flight: its day of the year, its entry in the timetable, the departure time the
/// timetable had that day, and how late it left (`None`: cancelled).
struct Flown {
    day: i64,
    flight: usize,
    dep_minutes: i64,
    delay: Option<i64>,
}

/// Which flights fly on which day, `rows` of them in date and actual departure order
/// (cancelled flights last), as the data set lists them. Like a real timetable, each flight
/// flies on five days of the week (its own five), and every two weeks the timetable is
/// revised: departures move by up to ±15 minutes.
fn flown(rng: &mut Rng, timetable: &[Scheduled], rows: usize) -> Vec<Flown> {
    let weekdays: Vec<u8> = timetable
        .iter()
        .map(|_| {
            let (a, b) = (rng.below(7), rng.below(7));
            0x7F & !(1 << a) & !(1 << b)
        })
        .collect();
    let mut shift = vec![0i64; timetable.len()];
    let mut out = Vec::with_capacity(rows);
    let mut day = 0i64;
    while out.len() < rows {
        if day % REVISION_DAYS == 0 {
            shift.iter_mut().for_each(|s| *s = rng.below(31) as i64 - 15);
        }
        let start = out.len();
        for (i, f) in timetable.iter().enumerate() {
            if weekdays[i] & (1 << (day % 7)) != 0 {
                // Most flights leave within minutes of schedule; a long tail is late.
                let delay = match rng.below(10) {
                    0..=5 => rng.below(12) as i64 - 8,
                    6..=8 => rng.below(45) as i64,
                    _ => rng.below(300) as i64,
                };
                out.push(Flown {
                    day,
                    flight: i,
                    dep_minutes: f.dep_minutes + shift[i],
                    delay: (rng.below(37) != 0).then_some(delay),
                });
            }
        }
        out[start..].sort_by_key(|f| f.delay.map_or(i64::MAX, |d| f.dep_minutes + d));
        day += 1;
    }
    out.truncate(rows);
    out
}

/// Generates `rows` rows in date and actual departure order, the same for the same seed.
pub fn flights(rows: usize, seed: u64) -> Vec<RecordBatch> {
    let mut rng = Rng(seed | 1);
    let schema = flights_schema();
    let destinations: Vec<String> = (0..DESTINATIONS).map(airport_code).collect();
    let tails: Vec<String> = (0..CARRIERS.len() * FLEET)
        .map(|i| format!("N{}{}", 100 + i * 7 % 900, CARRIERS[i / FLEET]))
        .collect();
    // Each timetable entry flies five days in seven.
    let timetable = schedule(&mut rng, (rows.div_ceil(365) * 7).div_ceil(5).max(1));
    let plan = flown(&mut rng, &timetable, rows);
    let mut out = Vec::new();
    let mut row = 0;
    while row < rows {
        let n = BATCH_ROWS.min(rows - row);
        let mut year = Int32Builder::with_capacity(n);
        let mut month = Int32Builder::with_capacity(n);
        let mut day_of_month = Int32Builder::with_capacity(n);
        let mut dep_time = Int32Builder::with_capacity(n);
        let mut sched_dep = Int32Builder::with_capacity(n);
        let mut dep_delay = Float64Builder::with_capacity(n);
        let mut arr_time = Int32Builder::with_capacity(n);
        let mut sched_arr = Int32Builder::with_capacity(n);
        let mut arr_delay = Float64Builder::with_capacity(n);
        let mut carrier = StringBuilder::with_capacity(n, n * 2);
        let mut flight = Int32Builder::with_capacity(n);
        let mut tailnum = StringBuilder::with_capacity(n, n * 6);
        let mut origin = StringBuilder::with_capacity(n, n * 3);
        let mut dest = StringBuilder::with_capacity(n, n * 3);
        let mut air_time = Float64Builder::with_capacity(n);
        let mut distance = Float64Builder::with_capacity(n);
        let mut hour = Float64Builder::with_capacity(n);
        let mut minute = Float64Builder::with_capacity(n);
        let mut time_hour = TimestampMicrosecondBuilder::with_capacity(n);
        for flown in &plan[row..row + n] {
            let day = flown.day;
            let f = &timetable[flown.flight];
            let dep_minutes = flown.dep_minutes;
            let (m, d) = month_day(day);
            let cancelled = flown.delay.is_none();
            let delay = flown.delay.unwrap_or(0);
            year.append_value(2013);
            month.append_value(m);
            day_of_month.append_value(d);
            sched_dep.append_value(hhmm(dep_minutes));
            sched_arr.append_value(hhmm(dep_minutes + f.block_minutes));
            carrier.append_value(CARRIERS[f.carrier]);
            flight.append_value(f.flight);
            if cancelled && rng.below(3) == 0 {
                tailnum.append_null();
            } else {
                tailnum.append_value(&tails[f.carrier * FLEET + rng.below(FLEET as u64) as usize]);
            }
            origin.append_value(ORIGINS[f.origin]);
            dest.append_value(&destinations[f.dest]);
            if cancelled {
                dep_time.append_null();
                dep_delay.append_null();
                arr_time.append_null();
                arr_delay.append_null();
                air_time.append_null();
            } else {
                let flown = (f.distance / 8.0) as i64 + rng.below(15) as i64;
                let arr = delay + flown + 15 + rng.below(20) as i64 - f.block_minutes;
                dep_time.append_value(hhmm(dep_minutes + delay));
                dep_delay.append_value(delay as f64);
                arr_time.append_value(hhmm(dep_minutes + f.block_minutes + arr));
                arr_delay.append_value(arr as f64);
                air_time.append_value(flown as f64);
            }
            distance.append_value(f.distance);
            hour.append_value((dep_minutes / 60) as f64);
            minute.append_value((dep_minutes % 60) as f64);
            time_hour.append_value((FIRST_DAY + day) * 24 * HOUR_US + (dep_minutes / 60) * HOUR_US);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(year.finish()),
            Arc::new(month.finish()),
            Arc::new(day_of_month.finish()),
            Arc::new(dep_time.finish()),
            Arc::new(sched_dep.finish()),
            Arc::new(dep_delay.finish()),
            Arc::new(arr_time.finish()),
            Arc::new(sched_arr.finish()),
            Arc::new(arr_delay.finish()),
            Arc::new(carrier.finish()),
            Arc::new(flight.finish()),
            Arc::new(tailnum.finish()),
            Arc::new(origin.finish()),
            Arc::new(dest.finish()),
            Arc::new(air_time.finish()),
            Arc::new(distance.finish()),
            Arc::new(hour.finish()),
            Arc::new(minute.finish()),
            Arc::new(time_hour.finish()),
        ];
        out.push(RecordBatch::try_new(schema.clone(), columns).expect("schema matches"));
        row += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flights_are_reproducible_and_have_the_asked_rows() {
        let a = flights(70_000, 7);
        assert_eq!(a.iter().map(RecordBatch::num_rows).sum::<usize>(), 70_000);
        assert_eq!(a, flights(70_000, 7));
        assert_eq!(a[0].num_columns(), 19);
        assert!(a[0].column(5).null_count() > 0, "cancelled flights have no delay");
    }
}
