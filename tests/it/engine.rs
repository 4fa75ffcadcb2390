//! The engine end to end on forged models: greedy answers identical to the CPU reference
//! pipeline, for both vision families and both text families, with tiling.

use glimpse::engine::{AskOptions, Engine, EngineOptions, Stop};
use glimpse::forge::{ForgeSpec, forge};
use glimpse::gguf::Gguf;
use glimpse::reference::pipeline::greedy_answer;

use crate::gpu::gpu;
use crate::util::temp_dir;

const MAX_TOKENS: usize = 16;

/// A picture with a few shapes, so tiles differ.
fn picture(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let circle = (x as i32 - 30).pow(2) + (y as i32 - 20).pow(2) < 200;
        let square = (60..90).contains(&x) && (10..40).contains(&y);
        match (circle, square) {
            (true, _) => image::Rgb([230, 40, 40]),
            (_, true) => image::Rgb([40, 200, 60]),
            _ => image::Rgb([(x * 2) as u8, (y * 3) as u8, 120]),
        }
    })
}

fn check(preset: &str, max_tiles: Option<usize>) {
    if gpu().is_none() {
        return;
    }
    let dir = temp_dir(&format!("engine_{preset}_{max_tiles:?}"));
    let f = forge(&ForgeSpec::preset(preset).unwrap(), &dir).unwrap();
    let img = picture(120, 70);
    let question = "What colour is the circle?";
    let want = greedy_answer(
        &Gguf::open(&f.text).unwrap(),
        &Gguf::open(&f.mmproj).unwrap(),
        &img,
        question,
        MAX_TOKENS,
        max_tiles,
    )
    .unwrap();
    let mut engine = Engine::load(&f.text, &f.mmproj, &EngineOptions::default()).unwrap();
    let opts = AskOptions { max_tokens: MAX_TOKENS, max_tiles, ..Default::default() };
    let mut streamed = String::new();
    let answer = engine.ask(&img, question, &opts, &mut |s| streamed.push_str(s)).unwrap();
    assert_eq!(answer.tokens, want, "{preset} tiles {max_tiles:?}: greedy tokens differ from the reference");
    assert_eq!(streamed, answer.text);
    assert_eq!(answer.text, engine.tokenizer().decode(&answer.tokens));
    let r = &answer.report;
    assert!(r.image_tokens > 0 && r.prompt_tokens > r.image_tokens);
    // Every generated token but the last one is fed back (the last is fed only on the next turn).
    let fed = r.generated_tokens - (answer.stop == Stop::MaxTokens) as usize;
    assert_eq!(r.kv_tokens, r.prompt_tokens + fed);
}

#[test]
fn engine_idefics3_tiled_matches_reference() {
    // The tiny preset tiles a 120x70 picture into a grid plus the overview.
    check("tiny", None);
}

#[test]
fn engine_idefics3_one_tile_matches_reference() {
    check("tiny", Some(1));
}

#[test]
fn engine_llava_and_qwen2_match_reference() {
    check("tiny-llava", None);
    check("tiny-qwen2", None);
}

#[test]
fn engine_follow_up_reuses_the_image_cache() {
    if gpu().is_none() {
        return;
    }
    let dir = temp_dir("engine_follow_up");
    let f = forge(&ForgeSpec::preset("tiny").unwrap(), &dir).unwrap();
    let mut engine = Engine::load(&f.text, &f.mmproj, &EngineOptions::default()).unwrap();
    let opts = AskOptions { max_tokens: 6, max_tiles: Some(1), ..Default::default() };
    let first = engine.ask(&picture(64, 64), "What is this?", &opts, &mut |_| {}).unwrap();
    let second = engine.follow_up("And its colour?", &opts, &mut |_| {}).unwrap();
    // Only the new turn is prefilled: no image tokens, fewer positions than the first prompt.
    assert_eq!(second.report.image_tokens, 0);
    assert!(
        second.report.prompt_tokens < first.report.prompt_tokens - first.report.image_tokens,
        "{:?}",
        second.report
    );
    assert!(second.report.kv_tokens > first.report.kv_tokens + second.report.prompt_tokens - 1);
    // A new ask starts over.
    let again = engine.ask(&picture(64, 64), "What is this?", &opts, &mut |_| {}).unwrap();
    assert_eq!(again.tokens, first.tokens);
    assert_eq!(again.report.kv_tokens, first.report.kv_tokens);
}

#[test]
fn engine_follow_up_without_a_conversation_is_an_error() {
    if gpu().is_none() {
        return;
    }
    let dir = temp_dir("engine_follow_up_none");
    let f = forge(&ForgeSpec::preset("tiny").unwrap(), &dir).unwrap();
    let mut engine = Engine::load(&f.text, &f.mmproj, &EngineOptions::default()).unwrap();
    let e = engine.follow_up("Hello?", &AskOptions::default(), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("ask about an image first"), "{e}");
}
