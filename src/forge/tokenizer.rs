//! A real byte-level BPE vocabulary for forged text models, as llama.cpp stores one
//! (`tokenizer.ggml.model = "gpt2"`): the 256 byte symbols in GPT-2's byte-to-unicode form,
//! merges learned by a small BPE trainer on an embedded English text (rank order, each result a
//! token), then further merges of existing token pairs up to the asked vocabulary size.
//!
//! Id layout (SmolVLM's, shared-notes/smolvlm-gguf.md §3), for any vocabulary size V:
//! ```text
//! 0 <|endoftext|>  1 <|im_start|>  2 <|im_end|>           CONTROL
//! 3 .. 259         byte symbols ("!", "\"", ... "Ġ" ...)   NORMAL
//! 259 .. V-128     merge results, in rank order             NORMAL
//! V-128            <global-img>                             USER_DEFINED
//! V-127 .. V-92    <row_1_col_1> .. <row_6_col_6>           USER_DEFINED (row-major)
//! V-91             <fake_token_around_image>                CONTROL
//! V-90             <image>                                  CONTROL
//! V-89 .. V-2      [PAD{id}]                                UNUSED (converter's holes)
//! V-1              <end_of_utterance>                       CONTROL
//! ```
//! With V = 49280 these are SmolVLM's ids (49152, 49153.., 49189, 49190, 49279). Whether the
//! real file marks `<global-img>`/`<row_*>` CONTROL or USER_DEFINED is unverified (notes §3).

use std::collections::{HashMap, HashSet};

use crate::model::names::{TOKEN_TYPE_CONTROL, TOKEN_TYPE_NORMAL, TOKEN_TYPE_UNUSED, TOKEN_TYPE_USER_DEFINED};

use super::spec::{ChatTemplate, TextSpec};

/// The English text the merges are learned from.
const CORPUS: &str = include_str!("corpus.txt");
/// Specials at the start, byte symbols, and the added block at the end.
const N_LEADING: u32 = 3;
const N_ADDED: u32 = 128;
/// The smallest vocabulary this layout fits.
pub const MIN_VOCAB: u32 = N_LEADING + 256 + N_ADDED;
/// `<row_R_col_C>` goes up to 6 x 6 tiles, as in SmolVLM.
const MAX_GRID: u32 = 6;

/// A vocabulary and its special ids, ready for the `tokenizer.ggml.*` keys.
#[derive(Clone, Debug)]
pub struct Vocab {
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
    /// "left right" pairs in rank order.
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: Option<bool>,
}

/// Builds the vocabulary of `spec.n_vocab` tokens (which `ForgeSpec::validate` checked is at
/// least `MIN_VOCAB`).
pub fn vocab(spec: &TextSpec) -> Vocab {
    let n_vocab = spec.n_vocab;
    let n_normal = (n_vocab - N_LEADING - N_ADDED) as usize;
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"].map(String::from).to_vec();
    let mut types = vec![TOKEN_TYPE_CONTROL; N_LEADING as usize];

    let (normal, merges) = bpe(spec.corpus.as_deref().unwrap_or(CORPUS), n_normal);
    types.extend(std::iter::repeat_n(TOKEN_TYPE_NORMAL, normal.len()));
    tokens.extend(normal);

    let mut added: Vec<(String, i32)> = vec![("<global-img>".into(), TOKEN_TYPE_USER_DEFINED)];
    for r in 1..=MAX_GRID {
        for c in 1..=MAX_GRID {
            added.push((format!("<row_{r}_col_{c}>"), TOKEN_TYPE_USER_DEFINED));
        }
    }
    added.push(("<fake_token_around_image>".into(), TOKEN_TYPE_CONTROL));
    added.push(("<image>".into(), TOKEN_TYPE_CONTROL));
    let first_hole = tokens.len() + added.len();
    added.extend((first_hole..n_vocab as usize - 1).map(|id| (format!("[PAD{id}]"), TOKEN_TYPE_UNUSED)));
    added.push(("<end_of_utterance>".into(), TOKEN_TYPE_CONTROL));
    for (token, ty) in added {
        tokens.push(token);
        types.push(ty);
    }

    let (endoftext, im_end, end_of_utterance) = (0, 2, n_vocab - 1);
    let (bos, eos, unk, pad, add_bos) = match spec.template {
        // SmolVLM special_tokens_map: bos <|im_start|>, eos <end_of_utterance>, pad <|im_end|>,
        // unk <|endoftext|>.
        ChatTemplate::Smolvlm => (Some(1), Some(end_of_utterance), Some(endoftext), Some(im_end), None),
        // Qwen2: bos = pad = <|endoftext|>, eos <|im_end|>, no unk, add_bos_token false.
        ChatTemplate::Chatml => (Some(endoftext), Some(im_end), None, Some(endoftext), Some(false)),
        // SmolLM2 base: <|endoftext|> is bos, eos and unk.
        ChatTemplate::Vicuna => (Some(endoftext), Some(endoftext), Some(endoftext), None, None),
    };
    Vocab { tokens, types, merges, bos, eos, unk, pad, add_bos }
}

/// `tokenizer.chat_template` for a template kind.
pub fn chat_template(t: ChatTemplate) -> &'static str {
    match t {
        // SmolVLM-500M-Instruct chat_template.json (notes §3), byte for byte.
        ChatTemplate::Smolvlm => concat!(
            "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}",
            "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}",
            "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}",
            "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n",
            "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
        ),
        // Qwen2-Instruct's template.
        ChatTemplate::Chatml => concat!(
            "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}",
            "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}",
            "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}",
            "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
        ),
        // llava-1.5 (llava-hf) Vicuna style; llama.cpp detects it by "USER: " and "ASSISTANT: ".
        ChatTemplate::Vicuna => concat!(
            "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + ' ' }}",
            "{% elif message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}",
            "{% else %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}{% endif %}{% endfor %}",
            "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
        ),
    }
}

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the other 68 to U+0100...
/// Returned in GPT-2's order (printable ranges first), which is also the vocabulary order.
pub fn byte_symbols() -> Vec<(u8, char)> {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
    let mut out: Vec<(u8, char)> = (0..=255u8).filter(|&b| printable(b)).map(|b| (b, b as char)).collect();
    for (n, b) in (0..=255u8).filter(|&b| !printable(b)).enumerate() {
        // 256 + n (n < 68) is U+0100..U+0143, always a char.
        out.push((b, char::from_u32(256 + n as u32).expect("U+0100..U+0143 are chars")));
    }
    out
}

/// The byte symbols followed by merge results: `n` tokens, and the merges that made them.
fn bpe(corpus: &str, n: usize) -> (Vec<String>, Vec<String>) {
    let symbols = byte_symbols();
    let mut to_char = ['\0'; 256];
    for &(b, c) in &symbols {
        to_char[b as usize] = c;
    }
    let mut tokens: Vec<String> = symbols.iter().map(|&(_, c)| c.to_string()).collect();
    let mut known: HashSet<String> = tokens.iter().cloned().collect();
    let mut merges = Vec::new();

    // Words as token-id sequences, with their frequency; ids index `tokens`.
    let id_of: HashMap<char, u32> = symbols.iter().enumerate().map(|(i, &(_, c))| (c, i as u32)).collect();
    let mut freq: HashMap<String, u32> = HashMap::new();
    for word in pre_tokenize(corpus) {
        *freq.entry(word.bytes().map(|b| to_char[b as usize]).collect()).or_default() += 1;
    }
    let mut words: Vec<(Vec<u32>, u32)> =
        freq.into_iter().map(|(w, f)| (w.chars().map(|c| id_of[&c]).collect(), f)).collect();
    words.sort();

    // Learn: merge the most frequent adjacent pair (ties: the lexicographically smallest
    // strings) while some pair occurs at least twice.
    while tokens.len() < n {
        let mut counts: HashMap<(u32, u32), u32> = HashMap::new();
        for (w, f) in &words {
            for p in w.windows(2) {
                *counts.entry((p[0], p[1])).or_default() += f;
            }
        }
        let key = |&(a, b): &(u32, u32)| (tokens[a as usize].as_str(), tokens[b as usize].as_str());
        let best = counts
            .iter()
            .filter(|(_, c)| **c >= 2)
            .max_by(|(p, c), (q, d)| c.cmp(d).then_with(|| key(q).cmp(&key(p))))
            .map(|(p, _)| *p);
        let Some((a, b)) = best else { break };
        let merged = format!("{}{}", tokens[a as usize], tokens[b as usize]);
        merges.push(format!("{} {}", tokens[a as usize], tokens[b as usize]));
        let id = match tokens.iter().position(|t| *t == merged) {
            Some(id) => id as u32,
            None => {
                known.insert(merged.clone());
                tokens.push(merged);
                tokens.len() as u32 - 1
            }
        };
        for (w, _) in &mut words {
            merge_in_place(w, a, b, id);
        }
    }

    // Fill: pairs of existing tokens (learned ones first, then bytes) in order of index sum, a
    // space only at the start and no newlines, whose concatenation is new.
    let base: Vec<String> = tokens[256..].iter().chain(&tokens[..256]).cloned().collect();
    let ok_left = |t: &str| !t.contains('Ċ');
    let ok_right = |t: &str| !t.contains('Ċ') && !t.starts_with('Ġ');
    'fill: for sum in 0..2 * base.len() {
        for i in sum.saturating_sub(base.len() - 1)..=sum.min(base.len() - 1) {
            if tokens.len() >= n {
                break 'fill;
            }
            let (l, r) = (&base[i], &base[sum - i]);
            let merged = format!("{l}{r}");
            if ok_left(l) && ok_right(r) && !known.contains(&merged) {
                merges.push(format!("{l} {r}"));
                known.insert(merged.clone());
                tokens.push(merged);
            }
        }
    }
    (tokens, merges)
}

/// Replaces every adjacent (a, b) in `w` by `id`, left to right.
fn merge_in_place(w: &mut Vec<u32>, a: u32, b: u32, id: u32) {
    let mut out = Vec::with_capacity(w.len());
    let mut i = 0;
    while i < w.len() {
        if i + 1 < w.len() && w[i] == a && w[i + 1] == b {
            out.push(id);
            i += 2;
        } else {
            out.push(w[i]);
            i += 1;
        }
    }
    *w = out;
}

/// Splits text like llama.cpp's "smollm" pre-tokenizer, simplified: single digits,
/// ` ?letters+`, ` ?punctuation+`, and whitespace runs (a run's last space joins the next word).
fn pre_tokenize(text: &str) -> Vec<&str> {
    #[derive(PartialEq)]
    enum Class {
        Letter,
        Digit,
        Space,
        Punct,
    }
    let class = |c: char| match c {
        c if c.is_alphabetic() => Class::Letter,
        c if c.is_numeric() => Class::Digit,
        c if c.is_whitespace() => Class::Space,
        _ => Class::Punct,
    };
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map_or(text.len(), |&(p, _)| p);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let c = class(chars[i].1);
        let next = chars.get(i + 1).map(|&(_, ch)| class(ch));
        if c == Class::Digit {
            i += 1;
        } else if c == Class::Space && chars[i].1 == ' ' && matches!(next, Some(Class::Letter | Class::Punct)) {
            let k = next.expect("matched Some above");
            i += 1;
            while i < chars.len() && class(chars[i].1) == k {
                i += 1;
            }
        } else if c == Class::Space {
            while i < chars.len() && class(chars[i].1) == Class::Space {
                i += 1;
            }
            // `\s+(?!\S)`: leave a final space for the word that follows.
            if i < chars.len() && i - start > 1 && chars[i - 1].1 == ' ' {
                i -= 1;
            }
        } else {
            while i < chars.len() && class(chars[i].1) == c {
                i += 1;
            }
        }
        out.push(&text[at(start)..at(i)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_tokenize_splits_like_smollm() {
        assert_eq!(
            pre_tokenize("A red circle, 12 dots.\n  Big"),
            ["A", " red", " circle", ",", " ", "1", "2", " dots", ".", "\n ", " Big"]
        );
    }

    #[test]
    fn byte_symbols_are_gpt2s() {
        let s = byte_symbols();
        assert_eq!(s.len(), 256);
        assert_eq!(s[0], (b'!', '!'));
        let space = s.iter().find(|(b, _)| *b == b' ').unwrap().1;
        let newline = s.iter().find(|(b, _)| *b == b'\n').unwrap().1;
        assert_eq!((space, newline), ('Ġ', 'Ċ'));
    }
}
