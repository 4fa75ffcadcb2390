//! Every shader parses and validates with naga (no GPU needed), with the sources exactly as the
//! engine builds them (block decoders prepended where a kernel reads GGUF weights).

use glimpse::gpu::Caps;
use glimpse::gpu::kernels::{SHADER_PARTS, SHADERS, source};

#[test]
fn shaders_parse_and_validate() {
    let caps = Caps { f16: false, subgroups: false, timestamps: false, subgroup_min_size: 0, subgroup_max_size: 0 };
    for &name in SHADERS {
        let src = source(name, caps).unwrap();
        let module =
            naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{name}.wgsl: {}", e.emit_to_string(&src)));
        let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all());
        v.validate(&module).unwrap_or_else(|e| panic!("{name}.wgsl does not validate: {e:?}"));
        // Each shader opens with its contract: a header comment naming what it computes.
        let body = std::fs::read_to_string(crate::util::repo_path(&format!("shaders/{name}.wgsl"))).unwrap();
        assert!(body.starts_with(&format!("// {name}.wgsl")), "{name}.wgsl must open with its header");
        assert!(
            body.contains("@binding(") && body.contains("dispatch"),
            "{name}.wgsl header lists bindings and dispatch"
        );
    }
    for &part in SHADER_PARTS {
        let body = std::fs::read_to_string(crate::util::repo_path(&format!("shaders/{part}.wgsl"))).unwrap();
        assert!(body.starts_with(&format!("// {part}.wgsl")), "{part}.wgsl must open with its header");
    }
    assert!(source("nope", caps).is_err());
}

#[test]
fn every_shader_file_is_registered() {
    let dir = crate::util::repo_path("shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let stem = name.trim_end_matches(".wgsl");
        assert!(
            SHADER_PARTS.contains(&stem) || SHADERS.contains(&stem),
            "shaders/{name} is in neither kernels::SHADERS nor kernels::SHADER_PARTS"
        );
    }
}
