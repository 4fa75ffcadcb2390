//! Fuzz target: `Gguf::from_bytes` on arbitrary bytes must return `Ok` or `Err`, never panic,
//! hang or allocate far beyond the input. On `Ok`, every metadata value, tensor info and tensor
//! data slice is read, so that accessors trusting the parse-time checks are exercised too.

#![no_main]

use glimpse::gguf::{Gguf, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = Gguf::from_bytes("fuzz", data.to_vec()) else { return };
    let mut n = g.version() as u64 ^ g.alignment() ^ g.data_offset() ^ g.file_size();
    n ^= g.header_bytes().len() as u64;
    assert!(g.data_offset() % g.alignment() == 0);
    for (key, value) in g.metadata() {
        n ^= touch_value(value);
        assert!(g.get(key).is_some(), "get('{key}') after parse");
        n ^= g.get_u32(key).is_ok() as u64 ^ g.get_i32(key).is_ok() as u64 ^ g.get_u64(key).is_ok() as u64;
        n ^= g.get_f32(key).is_ok() as u64 ^ g.get_bool(key).is_ok() as u64 ^ g.get_str(key).is_ok() as u64;
        n ^= g.get_as::<Vec<u32>>(key).is_ok() as u64 ^ g.get_as::<Vec<String>>(key).is_ok() as u64;
    }
    for t in g.tensors() {
        n ^= t.n_elements() ^ t.row_len() ^ t.n_rows() ^ t.shape_string().len() as u64;
        assert!(t.offset % g.alignment() == 0, "'{}': misaligned offset accepted", t.name);
        let bytes = g.tensor_data(t);
        assert_eq!(bytes.len() as u64, t.n_bytes, "'{}'", t.name);
        n ^= bytes.iter().fold(0u64, |acc, &b| acc.rotate_left(5) ^ b as u64);
        assert!(g.tensor(&t.name).is_ok());
    }
    std::hint::black_box(n);
});

fn touch_value(v: &Value) -> u64 {
    let mut n = v.type_name().len() as u64 ^ v.summary(60).len() as u64 ^ v.to_json().is_null() as u64;
    n ^= v.as_integer().is_some() as u64 ^ v.as_f64().is_some() as u64 ^ v.as_str().map_or(0, str::len) as u64;
    if let Value::Array(_, items) = v {
        n ^= items.iter().map(touch_value).fold(0, |a, b| a ^ b);
    }
    n
}
