//! Tokenizer, chat template, prompt layout and image preprocessing against forged models.

use glimpse::forge::{self, ForgeSpec};
use glimpse::gguf::Gguf;
use glimpse::model::chat::{ChatTemplate, ImageMarkup, Message, Part, TemplateFamily};
use glimpse::model::config::ProjectorKind;
use glimpse::model::names::TOKENIZER_PRE;
use glimpse::model::preprocess::{self, PreprocessParams};
use glimpse::model::prompt::{self, ImageLayout, PromptPiece, TileId};
use glimpse::model::tokenizer::Tokenizer;

/// The text GGUF of a preset, in memory (metadata + tensors).
fn text_gguf(preset: &str, edit: impl FnOnce(&mut forge::FilePlan)) -> Gguf {
    let spec = ForgeSpec::preset(preset).unwrap();
    let mut plan = forge::plan(&spec).unwrap();
    edit(&mut plan.text);
    let mut bytes = Vec::new();
    plan.text.into_writer(spec.seed).unwrap().write_to(&mut bytes).unwrap();
    Gguf::from_bytes(format!("{preset}.gguf"), bytes).unwrap()
}

fn tiny() -> Tokenizer {
    Tokenizer::from_gguf(&text_gguf("tiny", |_| {})).unwrap()
}

#[test]
fn tokenizer_round_trips_ascii_utf8_emoji() {
    for preset in ["tiny", "tiny-qwen2"] {
        let tok = Tokenizer::from_gguf(&text_gguf(preset, |_| {})).unwrap();
        for text in [
            "What is in this picture? The cat sat on 12345 mats.",
            "  leading spaces\n\nand\ttabs  ",
            "Ünïcödé — naïve café, 日本語のテキスト",
            "emoji 🐈‍⬛🚀 mixed 👍🏽!",
            "",
        ] {
            let ids = tok.encode(text).unwrap();
            assert_eq!(tok.decode(&ids), text, "{preset}: {ids:?}");
            // Streaming gives the same text, whole characters only.
            let mut s = tok.stream();
            let mut out = String::new();
            for &id in &ids {
                out.push_str(&s.push(id));
            }
            out.push_str(&s.finish());
            assert_eq!(out, text, "{preset} (stream)");
        }
    }
}

#[test]
fn tokenizer_stream_holds_back_split_utf8() {
    let tok = tiny();
    // A 4-byte emoji with no merges is 4 byte tokens; nothing shows until the last.
    let ids = tok.encode("🚀").unwrap();
    assert!(ids.len() > 1, "{ids:?}");
    let mut s = tok.stream();
    let parts: Vec<String> = ids.iter().map(|&id| s.push(id)).collect();
    assert!(parts[..parts.len() - 1].iter().all(String::is_empty), "{parts:?}");
    assert_eq!(parts.last().unwrap(), "🚀");
}

/// SmolVLM's ids at V = 576 (forge/tokenizer.rs layout): V-128 <global-img>, V-91 fake, V-90
/// <image>, V-1 <end_of_utterance>.
#[test]
fn tokenizer_special_tokens_are_single_ids() {
    let tok = tiny();
    assert_eq!(tok.n_vocab(), 576);
    for (text, id) in [
        ("<|endoftext|>", 0),
        ("<|im_start|>", 1),
        ("<|im_end|>", 2),
        ("<global-img>", 448),
        ("<row_1_col_1>", 449),
        ("<row_2_col_2>", 456),
        ("<fake_token_around_image>", 485),
        ("<image>", 486),
        ("<end_of_utterance>", 575),
    ] {
        assert_eq!(tok.encode(text).unwrap(), vec![id], "{text}");
        assert_eq!(tok.token_id(text), Some(id));
    }
    let ids = tok.encode("<|im_start|>User:<image>Hi<end_of_utterance>").unwrap();
    assert_eq!(ids[0], 1);
    assert!(ids.contains(&486) && *ids.last().unwrap() == 575, "{ids:?}");
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(tok.eos(), Some(575));
    assert!(tok.is_eog(575) && tok.is_eog(2) && tok.is_eog(0) && !tok.is_eog(1));
    assert!(!tok.add_bos());
}

#[test]
fn tokenizer_unknown_pre_tokenizer_is_error() {
    let g = text_gguf("tiny", |f| f.set(TOKENIZER_PRE, "klingon"));
    let e = Tokenizer::from_gguf(&g).unwrap_err().to_string();
    assert!(e.contains("klingon") && e.contains("tiny.gguf") && e.contains(TOKENIZER_PRE), "{e}");
}

#[test]
fn tokenizer_out_of_range_eos_is_error() {
    let g = text_gguf("tiny", |f| f.set("tokenizer.ggml.eos_token_id", 100_000u32));
    let e = Tokenizer::from_gguf(&g).unwrap_err().to_string();
    assert!(e.contains("eos_token_id") && e.contains("100000"), "{e}");
}

/// The file's template renders the Hugging Face processor's prompt (shared-notes §3).
#[test]
fn chat_smolvlm_template_from_file_one_image() {
    let g = text_gguf("tiny", |_| {});
    let t = ChatTemplate::from_gguf(&g, TemplateFamily::Smolvlm, "<|im_start|>", "<end_of_utterance>").unwrap();
    assert!(t.from_file);
    let msgs = [Message::new("user", vec![Part::Image, Part::Text("What is this?".into())])];
    let out = t.render(&msgs, ImageMarkup::Hf).unwrap();
    assert_eq!(
        out.replace("<__media__>", "<image>"),
        "<|im_start|>User:<image>What is this?<end_of_utterance>\nAssistant:"
    );
}

fn smolvlm_prompt() -> String {
    let t = ChatTemplate::new(TemplateFamily::Smolvlm.source(), "<|im_start|>", "<end_of_utterance>").unwrap();
    let msgs = [Message::new("user", vec![Part::Image, Part::Text("What is this?".into())])];
    t.render(&msgs, ImageMarkup::Hf).unwrap()
}

/// One tile: only the overview block, `\n\n<fake><global-img>` N slots `<fake>`.
#[test]
fn prompt_idefics3_overview_only_layout() {
    let tok = tiny();
    let pieces =
        prompt::build(&tok, &smolvlm_prompt(), &[ImageLayout::uniform(ProjectorKind::Idefics3, (0, 0), 4)]).unwrap();
    let nn = nl(&tok, "\n\n");
    let mut head = tok.encode("<|im_start|>User:").unwrap();
    head.extend(&nn);
    head.extend([485, 448]);
    let mut tail = vec![485];
    tail.extend(tok.encode("What is this?<end_of_utterance>\nAssistant:").unwrap());
    assert_eq!(
        pieces,
        vec![
            PromptPiece::Tokens(head),
            PromptPiece::Image { image: 0, tile: TileId::Overview, n_tokens: 4 },
            PromptPiece::Tokens(tail),
        ]
    );
}

/// 2x2 grid: tiles row-major with `<fake><row_R_col_C>` before each, `\n` between rows, then
/// the overview block (mtmd's IDEFICS3 slice template, overview last).
#[test]
fn prompt_idefics3_2x2_layout() {
    let tok = tiny();
    let layout =
        ImageLayout { n_tokens_grid: vec![4, 3, 2, 1], ..ImageLayout::uniform(ProjectorKind::Idefics3, (2, 2), 5) };
    let pieces = prompt::build(&tok, &smolvlm_prompt(), &[layout]).unwrap();
    let row = |r: u32, c: u32| 449 + (r - 1) * 6 + (c - 1);
    let mut head = tok.encode("<|im_start|>User:").unwrap();
    head.extend([485, row(1, 1)]);
    let mut second_row = nl(&tok, "\n");
    second_row.extend([485, row(2, 1)]);
    let mut ov = nl(&tok, "\n\n");
    ov.extend([485, 448]);
    let mut tail = vec![485];
    tail.extend(tok.encode("What is this?<end_of_utterance>\nAssistant:").unwrap());
    let img = |tile, n_tokens| PromptPiece::Image { image: 0, tile, n_tokens };
    assert_eq!(
        pieces,
        vec![
            PromptPiece::Tokens(head),
            img(TileId::Grid { row: 0, col: 0 }, 4),
            PromptPiece::Tokens(vec![485, row(1, 2)]),
            img(TileId::Grid { row: 0, col: 1 }, 3),
            PromptPiece::Tokens(second_row),
            img(TileId::Grid { row: 1, col: 0 }, 2),
            PromptPiece::Tokens(vec![485, row(2, 2)]),
            img(TileId::Grid { row: 1, col: 1 }, 1),
            PromptPiece::Tokens(ov),
            img(TileId::Overview, 5),
            PromptPiece::Tokens(tail),
        ]
    );
    assert_eq!(prompt::n_positions(&pieces), pieces_text_len(&pieces) + 4 + 3 + 2 + 1 + 5);
}

#[test]
fn prompt_mlp_is_bare_slots_and_marker_count_checked() {
    let tok = tiny();
    let text = "USER: <__media__>\nWhat?\nASSISTANT:";
    let pieces = prompt::build(&tok, text, &[ImageLayout::uniform(ProjectorKind::Mlp, (0, 0), 9)]).unwrap();
    assert_eq!(pieces.len(), 3);
    assert_eq!(pieces[1], PromptPiece::Image { image: 0, tile: TileId::Overview, n_tokens: 9 });
    assert!(prompt::build(&tok, text, &[]).is_err());
}

fn nl(tok: &Tokenizer, s: &str) -> Vec<u32> {
    tok.piece_id(s).map_or_else(|| tok.encode(s).unwrap(), |id| vec![id])
}

fn pieces_text_len(p: &[PromptPiece]) -> usize {
    p.iter().map(|p| if let PromptPiece::Tokens(t) = p { t.len() } else { 0 }).sum()
}

/// A 128x96 image at image_size 64 with longest edge 128: refined 128x96 -> 128x128, a 2x2
/// grid (the last row padded black below 96 + 16 rows... centred: offset (128-96)/2 = 16).
/// Normalisation mean = std = 0.5: v/255 * 2 - 1.
#[test]
fn preprocess_idefics3_grid_and_values() {
    let img = image::RgbImage::from_fn(128, 96, |x, _| image::Rgb([255, 0, if x < 64 { 51 } else { 204 }]));
    let p = PreprocessParams {
        projector: ProjectorKind::Idefics3,
        image_size: 64,
        image_mean: [0.5; 3],
        image_std: [0.5; 3],
        longest_edge: Some(128),
    };
    let out = preprocess::preprocess(&img, &p, None).unwrap();
    assert_eq!(out.grid, (2, 2));
    assert_eq!(out.tiles.len(), 4);
    assert_eq!(out.n_images(), 5);
    assert!(out.tiles.iter().all(|t| t.len() == 3 * 64 * 64));
    let at = |t: &[f32], c: usize, y: usize, x: usize| t[c * 64 * 64 + y * 64 + x];
    // Tile (0,0): rows 0..16 are padding (black -> -1), then the image.
    assert_eq!(at(&out.tiles[0], 0, 0, 0), -1.0);
    assert_eq!(at(&out.tiles[0], 0, 20, 5), 1.0); // red 255
    assert_eq!(at(&out.tiles[0], 1, 20, 5), -1.0); // green 0
    assert!((at(&out.tiles[0], 2, 20, 5) - (51.0 / 255.0 * 2.0 - 1.0)).abs() < 1e-6); // -0.6
    assert!((at(&out.tiles[1], 2, 20, 60) - (204.0 / 255.0 * 2.0 - 1.0)).abs() < 1e-6); // 0.6
    // Overview: stretched, no padding.
    assert_eq!(at(&out.overview, 0, 0, 0), 1.0);
    // One tile requested: the overview only.
    let one = preprocess::preprocess(&img, &p, Some(1)).unwrap();
    assert_eq!((one.grid, one.tiles.len()), ((0, 0), 0));
    assert_eq!(one.overview, out.overview);
}

#[test]
fn preprocess_bad_images_are_errors() {
    let p = PreprocessParams {
        projector: ProjectorKind::Mlp,
        image_size: 8,
        image_mean: [0.5; 3],
        image_std: [0.5; 3],
        longest_edge: None,
    };
    assert!(preprocess::preprocess_bytes(b"not an image", &p, None).is_err());
    assert!(preprocess::preprocess(&image::RgbImage::new(0, 0), &p, None).is_err());
    // A truncated PNG.
    let mut png = Vec::new();
    image::RgbImage::from_pixel(16, 16, image::Rgb([1, 2, 3]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    assert!(preprocess::preprocess_bytes(&png[..png.len() / 2], &p, None).is_err());
    // The whole PNG decodes; grey and 16-bit inputs come out as RGB8.
    let ok = preprocess::preprocess_bytes(&png, &p, None).unwrap();
    assert_eq!(ok.source, (16, 16));
    let mut grey16 = Vec::new();
    image::DynamicImage::ImageLuma16(image::ImageBuffer::from_pixel(4, 4, image::Luma([0x8000u16])))
        .write_to(&mut std::io::Cursor::new(&mut grey16), image::ImageFormat::Png)
        .unwrap();
    let rgb = preprocess::decode(&grey16).unwrap();
    assert_eq!(rgb.get_pixel(0, 0).0, [0x80, 0x80, 0x80]);
}
