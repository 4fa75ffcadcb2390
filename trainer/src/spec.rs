//! The bundled model's shape, its tokenizer corpus, and export: the trained values written in
//! forge's exact llama.cpp layout (legacy LLaVA mmproj + llama text model), F16 and Q8_0.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use glimpse::dataset::{self, SceneConfig, Split};
use glimpse::forge::{self, ForgeSpec};
use glimpse::gguf::{GgmlType, Gguf};

/// Scenes whose questions make the tokenizer's corpus.
const CORPUS_SCENES: u64 = 3000;

/// The model: LLaVA's layout at toy size. A 96 px image in 6 px patches gives 16 x 16 = 256
/// patch tokens (+ CLS), room for pruning to work; widths and depths fit a CPU training budget.
/// With `trimmer`, the mmproj also holds a learned token trimmer 32 wide.
pub fn spec(trimmer: bool) -> anyhow::Result<ForgeSpec> {
    let mut s = ForgeSpec::preset("tiny-llava")?;
    s.text.name = "glimpse shapes-vlm".into();
    s.text.n_embd = 64;
    s.text.n_layer = 2;
    s.text.n_head = 4;
    s.text.n_head_kv = 2;
    s.text.n_ff = 192;
    s.text.n_vocab = 640;
    s.text.n_ctx = 512;
    s.text.tied = true;
    s.text.corpus = Some(corpus());
    s.vision.name = "glimpse shapes-vlm".into();
    s.vision.image_size = 96;
    s.vision.patch_size = 6;
    s.vision.n_embd = 64;
    s.vision.n_ff = 128;
    s.vision.n_head = 4;
    s.vision.n_layer = 3;
    s.vision.trimmer = trimmer.then_some(32);
    s.set_qtype(GgmlType::F32);
    s.validate()?;
    Ok(s)
}

/// Every question generated for the first training scenes, in the chat form, with its answer:
/// the BPE merges then make the dataset's words single tokens.
fn corpus() -> String {
    let cfg = SceneConfig::default();
    let mut out = String::new();
    for i in 0..CORPUS_SCENES {
        let seed = Split::Train.seed(i);
        let scene = dataset::Scene::generate(seed, &cfg);
        for q in dataset::questions(&scene, seed) {
            out += &format!("USER: {} ASSISTANT: {}\n", q.text, q.answer);
        }
    }
    out
}

/// The initial (random, forge-initialised) pair, in memory.
pub fn initial(spec: &ForgeSpec) -> anyhow::Result<(Gguf, Gguf)> {
    let plan = forge::plan(spec)?;
    let to_gguf = |w: glimpse::gguf::GgufWriter, name: &str| -> anyhow::Result<Gguf> {
        let mut bytes = Vec::new();
        w.write_to(&mut bytes)?;
        Ok(Gguf::from_bytes(name, bytes)?)
    };
    Ok((
        to_gguf(plan.text.into_writer(spec.seed)?, "text.gguf")?,
        to_gguf(plan.mmproj.into_writer(spec.seed)?, "mmproj.gguf")?,
    ))
}

/// Writes `text-{ty}.gguf` and `mmproj-{ty}.gguf` into `dir` with the trained `values`.
pub fn export(
    spec: &ForgeSpec,
    values: &Arc<HashMap<String, Vec<f32>>>,
    ty: GgmlType,
    dir: &Path,
) -> anyhow::Result<()> {
    let mut spec = spec.clone();
    spec.set_qtype(ty);
    let plan = forge::plan(&spec)?;
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let suffix = ty.name().to_lowercase();
    for (file, name) in [(plan.text, "text"), (plan.mmproj, "mmproj")] {
        let path = dir.join(format!("{name}-{suffix}.gguf"));
        // Write beside and rename, so an interrupted export never leaves a torn file.
        let tmp = path.with_extension("gguf.part");
        file.into_writer_from(values.clone())?.write_file(&tmp).with_context(|| tmp.display().to_string())?;
        std::fs::rename(&tmp, &path).with_context(|| path.display().to_string())?;
    }
    Ok(())
}
