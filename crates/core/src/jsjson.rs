//! JSON bytes exactly as JavaScript writes them.
//!
//! Many receivers verify a signature over `JSON.stringify(req.body)` instead of over the raw body
//! (ConnectGain's Node example for the flat format does exactly that, behind `express.json()`), so
//! Hookline sends bodies that are a fixed point of `JSON.stringify(JSON.parse(body))`: parsing and
//! re-serializing them in JavaScript gives back the same bytes, and such a receiver verifies.
//! [`to_js_json`] is the one serializer for delivery bodies. It differs from `serde_json::to_vec`
//! in three ways:
//!
//! - **Key order.** Keys keep their insertion order, except that JavaScript lists *array-index*
//!   keys first, in ascending numeric order (ECMAScript `OrdinaryOwnPropertyKeys`): the canonical
//!   decimal forms of `0 ..= 4294967294`, without sign or leading zeros. `{"b":1,"10":2,"2":3}`
//!   is written `{"2":3,"10":2,"b":1}`; `"01"`, `"-1"`, `"1.5"` and `"4294967295"` stay in place.
//! - **Numbers** are IEEE doubles in JavaScript and are written as ECMAScript
//!   `Number::toString` writes them: the shortest digits that read back as the same double;
//!   decimal notation for `1e-7 < |x| < 1e21`, else `1e+21` / `1.5e-7`; `1.0` is `1`, `-0` is `0`.
//!   Integers beyond ±2^53 are first rounded to the nearest double, as `JSON.parse` does
//!   (`12345678901234567890` becomes `12345678901234567000`), so the body says what the receiver
//!   will actually hold.
//! - **Strings** are escaped as `JSON.stringify` escapes them: `\"`, `\\`, `\b`, `\f`, `\n`,
//!   `\r`, `\t`, other U+0000–U+001F as lowercase `\u00xx`; everything else is written raw (UTF-8),
//!   including `/`, U+007F, U+2028/U+2029 and all non-ASCII text.
//!
//! There is no whitespace anywhere, as with `JSON.stringify(value)` without `space`.

use serde_json::{Map, Number, Value};

/// The largest integer JavaScript represents exactly (2^53).
const MAX_EXACT: u64 = 1 << 53;

/// The largest array index (2^32 - 2): keys up to this one are ordered numerically by JavaScript.
const MAX_ARRAY_INDEX: u64 = 4_294_967_294;

/// `JSON.stringify(JSON.parse(x))` for the document `v`, as bytes.
pub fn to_js_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, v);
    out
}

/// [`to_js_json`] as a `String`.
pub fn to_js_string(v: &Value) -> String {
    String::from_utf8(to_js_json(v)).expect("the writer only emits UTF-8")
}

/// Appends the JavaScript serialization of `v` to `out`.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(js_number(n).as_bytes()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(m) => write_object(out, m),
    }
}

fn write_object(out: &mut Vec<u8>, m: &Map<String, Value>) {
    out.push(b'{');
    let mut first = true;
    let mut entry = |out: &mut Vec<u8>, k: &str, v: &Value| {
        if !first {
            out.push(b',');
        }
        first = false;
        write_string(out, k);
        out.push(b':');
        write_value(out, v);
    };
    let mut indexed: Vec<(u32, &String, &Value)> = m
        .iter()
        .filter_map(|(k, v)| array_index(k).map(|i| (i, k, v)))
        .collect();
    if indexed.is_empty() {
        for (k, v) in m {
            entry(out, k, v);
        }
    } else {
        indexed.sort_unstable_by_key(|(i, _, _)| *i);
        for (_, k, v) in &indexed {
            entry(out, k, v);
        }
        for (k, v) in m.iter().filter(|(k, _)| array_index(k).is_none()) {
            entry(out, k, v);
        }
    }
    out.push(b'}');
}

/// The numeric value of an array-index key (`"0"`, `"7"`, `"4294967294"`), which JavaScript
/// orders before every other key; `None` for any other key (`"01"`, `"-1"`, `"4294967295"`).
pub fn array_index(key: &str) -> Option<u32> {
    let b = key.as_bytes();
    if b.is_empty() || b.len() > 10 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() > 1 && b[0] == b'0' {
        return None;
    }
    let n: u64 = key.parse().ok()?;
    (n <= MAX_ARRAY_INDEX).then_some(n as u32)
}

/// A JSON number as JavaScript prints it after `JSON.parse`.
pub fn js_number(n: &Number) -> String {
    if let Some(u) = n.as_u64() {
        if u <= MAX_EXACT {
            return u.to_string();
        }
        return format_f64(u as f64);
    }
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= MAX_EXACT {
            return i.to_string();
        }
        return format_f64(i as f64);
    }
    // serde_json numbers are finite; `as_f64` only fails with arbitrary precision off-range input.
    format_f64(n.as_f64().unwrap_or(f64::NAN))
}

/// ECMAScript `Number::toString(x)` (radix 10), as `JSON.stringify` uses it; non-finite values
/// are `null`, as `JSON.stringify` writes them.
pub fn format_f64(x: f64) -> String {
    if !x.is_finite() {
        return "null".into();
    }
    if x == 0.0 {
        return "0".into(); // also -0
    }
    let (negative, x) = if x < 0.0 { (true, -x) } else { (false, x) };
    let (digits, n) = shortest_digits(x);
    let k = digits.len() as i32;
    let mut s = String::with_capacity(k as usize + 8);
    if negative {
        s.push('-');
    }
    // x = 0.d1d2…dk × 10^n, with k as small as possible (ECMAScript 6.1.6.1.20, steps 5-10).
    if k <= n && n <= 21 {
        s.push_str(&digits);
        s.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        s.push_str(&digits[..n as usize]);
        s.push('.');
        s.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', (-n) as usize));
        s.push_str(&digits);
    } else {
        s.push_str(&digits[..1]);
        if k > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        let e = n - 1;
        s.push('e');
        s.push(if e >= 0 { '+' } else { '-' });
        s.push_str(&e.unsigned_abs().to_string());
    }
    s
}

/// The shortest decimal digits that round-trip to `x > 0` (no leading or trailing zeros), and
/// the exponent `n` such that `x = 0.digits × 10^n`. Ryu picks, among the shortest candidates,
/// the one closest to `x`, which is what ECMAScript asks for.
fn shortest_digits(x: f64) -> (String, i32) {
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(x);
    let (mantissa, exp) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().expect("ryu writes integer exponents")),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = int_part.chars().chain(frac_part.chars()).collect();
    let mut n = int_part.len() as i32 + exp;
    let leading = digits.len() - digits.trim_start_matches('0').len();
    digits.drain(..leading);
    n -= leading as i32;
    let trimmed = digits.trim_end_matches('0').len();
    digits.truncate(trimmed);
    (digits, n)
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn js(v: Value) -> String {
        to_js_string(&v)
    }

    fn num(text: &str) -> String {
        let v: Value = serde_json::from_str(text).unwrap();
        to_js_string(&v)
    }

    #[test]
    fn integers_within_2_pow_53_are_exact() {
        for (input, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("7", "7"),
            ("-42", "-42"),
            ("9007199254740992", "9007199254740992"),
            ("-9007199254740992", "-9007199254740992"),
            ("1000000000000000000000", "1e+21"),
            ("100000000000000000000", "100000000000000000000"),
        ] {
            assert_eq!(num(input), want, "{input}");
        }
    }

    #[test]
    fn larger_integers_round_to_the_nearest_double() {
        for (input, want) in [
            ("9007199254740993", "9007199254740992"),
            ("9007199254740995", "9007199254740996"),
            ("-9007199254740993", "-9007199254740992"),
            ("12345678901234567890", "12345678901234567000"),
            ("18446744073709551615", "18446744073709552000"),
            ("-9223372036854775808", "-9223372036854776000"),
            ("123456789012345678901234567890", "1.2345678901234568e+29"),
        ] {
            assert_eq!(num(input), want, "{input}");
        }
    }

    #[test]
    fn floats_use_ecmascript_number_to_string() {
        for (input, want) in [
            ("1.0", "1"),
            ("-1.0", "-1"),
            ("-0.0", "0"),
            ("0.1", "0.1"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("1.5", "1.5"),
            ("123.456", "123.456"),
            ("1e2", "100"),
            ("1E2", "100"),
            ("1e20", "100000000000000000000"),
            ("1.5e20", "150000000000000000000"),
            ("1e21", "1e+21"),
            ("1.5e21", "1.5e+21"),
            ("1e300", "1e+300"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("0.000001", "0.000001"),
            ("0.0000015", "0.0000015"),
            ("1e-7", "1e-7"),
            ("1.5e-7", "1.5e-7"),
            ("-1.5e-7", "-1.5e-7"),
            ("5e-324", "5e-324"),
            ("2.2250738585072014e-308", "2.2250738585072014e-308"),
            ("123456789.125", "123456789.125"),
            ("4.35", "4.35"),
            ("0.000123", "0.000123"),
        ] {
            assert_eq!(num(input), want, "{input}");
        }
        assert_eq!(format_f64(f64::NAN), "null");
        assert_eq!(format_f64(f64::INFINITY), "null");
        assert_eq!(format_f64(-0.0), "0");
        assert_eq!(format_f64(2f64.powi(70)), "1.1805916207174113e+21");
        assert_eq!(format_f64(1e21 - 65536.0 * 2.0), "999999999999999900000");
    }

    #[test]
    fn array_index_keys_come_first_in_numeric_order() {
        let v: Value = serde_json::from_str(
            r#"{"b":1,"10":2,"2":3,"a":4,"01":5,"-1":6,"1.5":7,"0":8,"4294967294":9,"4294967295":10," 3":11}"#,
        )
        .unwrap();
        assert_eq!(
            js(v),
            r#"{"0":8,"2":3,"10":2,"4294967294":9,"b":1,"a":4,"01":5,"-1":6,"1.5":7,"4294967295":10," 3":11}"#
        );
        let nested = json!({"x": [{"z": 1, "5": 2}], "1": {"c": 0, "3": 1}});
        assert_eq!(js(nested), r#"{"1":{"3":1,"c":0},"x":[{"5":2,"z":1}]}"#);
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("00"), None);
        assert_eq!(array_index(""), None);
        assert_eq!(array_index("+1"), None);
        assert_eq!(array_index("99999999999"), None);
        assert_eq!(array_index("٣"), None);
    }

    #[test]
    fn strings_are_escaped_like_json_stringify() {
        let s = "q\" b\\ \u{8}\u{c}\n\r\t \u{0}\u{1f}\u{7f} / \u{2028}\u{2029} é 漢 🚀 </script>";
        assert_eq!(
            js(json!(s)),
            "\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0000\\u001f\u{7f} / \u{2028}\u{2029} é 漢 🚀 </script>\""
        );
        assert_eq!(js(json!({"k\n": "v"})), "{\"k\\n\":\"v\"}");
    }

    #[test]
    fn compact_output_for_every_value_kind() {
        let v = json!({"a": [1, 2.5, null, true, false, "s", {}, []], "b": {"c": {}}});
        assert_eq!(
            js(v),
            r#"{"a":[1,2.5,null,true,false,"s",{},[]],"b":{"c":{}}}"#
        );
    }

    #[test]
    fn agrees_with_serde_json_where_javascript_does_too() {
        let v =
            json!({"id": "c1", "n": 12, "list": [{"label": "Work", "value": "x@y.z"}], "ok": true});
        assert_eq!(to_js_json(&v), serde_json::to_vec(&v).unwrap());
    }
}
