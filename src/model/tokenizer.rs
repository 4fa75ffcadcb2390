//! The text model's tokenizer, built from GGUF metadata the way llama.cpp's `llama-vocab.cpp`
//! reads it (`tokenizer.ggml.*`), on top of the Hugging Face `tokenizers` crate (the pipeline
//! mistral.rs' `gguf_tokenizer.rs` builds): byte-level BPE (`tokenizer.ggml.model = "gpt2"`) with
//! the pre-tokenizer regexes llama.cpp picks for `tokenizer.ggml.pre`, and every CONTROL /
//! USER_DEFINED token matched in text as one id (llama.cpp's `parse_special = true`, which mtmd
//! uses for the chat-templated prompt).
//!
//! Decoding is done here, not by the crate: each id maps to its bytes once (GPT-2's
//! byte-to-unicode table undone for normal tokens, the raw text for special ones), so a streamed
//! answer can hold back bytes until they form whole UTF-8 characters ([`StreamDecoder`]).

use std::collections::HashMap;

use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::gguf::Gguf;
use crate::model::Error;
use crate::model::names::*;

/// GPT-2's pattern; llama.cpp's `LLAMA_VOCAB_PRE_TYPE_GPT2` and the second half of `SMOLLM`
/// (llama-vocab.cpp `llm_tokenizer_bpe`). Text the pattern leaves unmatched stays a piece of its
/// own in both llama.cpp and `Split(Isolated)`, so the missing trailing `|\s+` changes nothing.
const RE_GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// `smollm` (also starcoder, refact, command-r, ...): every digit alone first.
const RE_DIGIT: &str = r"\p{N}";
/// `qwen2` (Qwen2 tokenizer.json's Split regex, the form llama.cpp's is expanded from).
const RE_QWEN2: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// `llama-bpe` / `llama3` (Llama-3 tokenizer.json); llama.cpp also sets `ignore_merges` for it.
const RE_LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.ggml.pre` values glimpse knows, for error messages.
const KNOWN_PRE: &str = "smollm, qwen2, llama-bpe, gpt2";

/// End-of-generation token texts besides `eos` (llama.cpp's `special_eog_ids` gathers the same
/// ones by text: `<|im_end|>`, `<end_of_utterance>`, `<|endoftext|>`, ...).
const EOG_TEXTS: &[&str] = &["<|im_end|>", "<end_of_utterance>", "<|endoftext|>", "<|eot_id|>"];

/// A byte-level BPE tokenizer read from a text GGUF.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Token text as stored (`tokenizer.ggml.tokens`), by id.
    tokens: Vec<String>,
    /// What each id decodes to, by id.
    bytes: Vec<Vec<u8>>,
    /// Token text -> id for CONTROL / USER_DEFINED tokens.
    specials: HashMap<String, u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (llama.cpp's default for these BPE vocabularies: false,
    /// except llama-bpe).
    add_bos: bool,
    eog: Vec<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("n_vocab", &self.tokens.len())
            .field("specials", &self.specials.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

impl Tokenizer {
    /// Reads `tokenizer.ggml.*` from a text model file. Every id in the metadata is checked
    /// against the vocabulary; bad metadata is an error naming the file and key.
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer, Error> {
        let bad = |key: &str, what: String| {
            Error::Gguf(crate::gguf::Error::BadValue { file: g.name().to_string(), key: key.to_string(), what })
        };
        let model = g.get_str(TOKENIZER_MODEL)?;
        if model != "gpt2" {
            let what = format!("tokenizer \"{model}\" is not supported (glimpse reads byte-level BPE, \"gpt2\")");
            return Err(bad(TOKENIZER_MODEL, what));
        }
        // llama.cpp warns and falls back to "default" when the key is missing; glimpse refuses to
        // guess a regex (mistral.rs does the same).
        let pre: String = g.get_opt(TOKENIZER_PRE)?.unwrap_or_else(|| "(missing)".to_string());
        let (regexes, ignore_merges, default_add_bos): (&[&str], bool, bool) = match pre.as_str() {
            "smollm" => (&[RE_DIGIT, RE_GPT2], false, false),
            "qwen2" => (&[RE_QWEN2], false, false),
            "llama-bpe" | "llama3" | "llama-v3" => (&[RE_LLAMA3], true, true),
            "gpt2" | "gpt-2" => (&[RE_GPT2], false, false),
            other => {
                let what = format!("pre-tokenizer \"{other}\" is not one glimpse knows ({KNOWN_PRE})");
                return Err(bad(TOKENIZER_PRE, what));
            }
        };

        let tokens: Vec<String> = g.get_as(TOKENIZER_TOKENS)?;
        let n_vocab = tokens.len();
        if n_vocab == 0 || n_vocab > u32::MAX as usize {
            return Err(bad(TOKENIZER_TOKENS, format!("{n_vocab} tokens")));
        }
        let types: Vec<i32> = match g.get_opt(TOKENIZER_TOKEN_TYPE)? {
            Some(t) => t,
            None => vec![TOKEN_TYPE_NORMAL; n_vocab],
        };
        if types.len() != n_vocab {
            return Err(bad(TOKENIZER_TOKEN_TYPE, format!("{} types for {n_vocab} tokens", types.len())));
        }
        let merges_raw: Vec<String> = g.get_as(TOKENIZER_MERGES)?;
        // llama.cpp splits each merge at the first space after position 0 (`word.find(' ', 1)`).
        let mut merges: Merges = Vec::with_capacity(merges_raw.len());
        for (i, m) in merges_raw.iter().enumerate() {
            let split = m.char_indices().skip(1).find(|&(_, c)| c == ' ').map(|(p, _)| p);
            let Some(p) = split else {
                return Err(bad(TOKENIZER_MERGES, format!("merge {i} {m:?} has no space")));
            };
            merges.push((m[..p].to_string(), m[p + 1..].to_string()));
        }

        // Later duplicates win, as in llama.cpp's `token_to_id`.
        let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(ignore_merges)
            .build()
            .map_err(|e| bad(TOKENIZER_MERGES, e.to_string()))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);

        let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
        for re in regexes {
            let split = Split::new(SplitPattern::Regex(re.to_string()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| bad(TOKENIZER_PRE, format!("regex {re:?}: {e}")))?;
            steps.push(split.into());
        }
        steps.push(ByteLevel::new(false, false, false).into());
        inner.with_pre_tokenizer(Some(Sequence::new(steps)));

        // CONTROL and USER_DEFINED tokens are matched in text before BPE (llama.cpp
        // `tokenizer_st_partition`); `normalized: false`, no stripping.
        let mut specials = HashMap::new();
        let mut added = Vec::new();
        for (id, (text, &ty)) in tokens.iter().zip(&types).enumerate() {
            if (ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_USER_DEFINED) && !text.is_empty() {
                specials.insert(text.clone(), id as u32);
                added.push(AddedToken::from(text.clone(), true));
            }
        }
        inner.add_special_tokens(&added);

        let byte_of: HashMap<char, u8> = gpt2_byte_symbols().into_iter().map(|(b, c)| (c, b)).collect();
        let bytes = tokens
            .iter()
            .zip(&types)
            .map(|(t, &ty)| {
                let special = ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_USER_DEFINED;
                let mapped: Option<Vec<u8>> = t.chars().map(|c| byte_of.get(&c).copied()).collect();
                // A token with a char outside the byte table decodes to its raw text, as the
                // ByteLevel decoder does.
                match mapped {
                    Some(b) if !special => b,
                    _ => t.as_bytes().to_vec(),
                }
            })
            .collect();

        let id = |key: &str| -> Result<Option<u32>, Error> {
            match g.get_opt::<u32>(key)? {
                Some(i) if i as usize >= n_vocab => {
                    Err(bad(key, format!("id {i} outside the vocabulary of {n_vocab}")))
                }
                other => Ok(other),
            }
        };
        let (bos, eos, unk, pad) =
            (id(TOKENIZER_BOS_ID)?, id(TOKENIZER_EOS_ID)?, id(TOKENIZER_UNK_ID)?, id(TOKENIZER_PAD_ID)?);
        let add_bos = g.get_opt(TOKENIZER_ADD_BOS)?.unwrap_or(default_add_bos);
        if add_bos && bos.is_none() {
            return Err(bad(TOKENIZER_ADD_BOS, "true, but there is no bos_token_id".to_string()));
        }

        let mut eog: Vec<u32> = eos.into_iter().collect();
        eog.extend(EOG_TEXTS.iter().filter_map(|t| specials.get(*t).copied()));
        eog.sort_unstable();
        eog.dedup();

        Ok(Tokenizer { inner, tokens, bytes, specials, bos, eos, unk, pad, add_bos, eog })
    }

    /// Token ids of `text`, special tokens (`<|im_start|>`, `<image>`, ...) parsed as one id
    /// each. No BOS is added (see [`Tokenizer::add_bos`]).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, Error> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| Error::Unsupported(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens included; invalid UTF-8 shows as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = Vec::new();
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id));
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The bytes one id decodes to (empty for an id outside the vocabulary).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// The id of a token by its stored text (`"<|im_start|>"`, `"Ġthe"`).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.specials.get(text).copied().or_else(|| self.inner.token_to_id(text))
    }

    /// The id of the first token whose *decoded* text is `piece` (mtmd's `lookup_token`, which
    /// compares `token_to_piece` output: `"\n"` finds `Ċ`).
    pub fn piece_id(&self, piece: &str) -> Option<u32> {
        self.bytes.iter().position(|b| b == piece.as_bytes()).map(|i| i as u32)
    }

    /// The stored text of an id.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    pub fn unk(&self) -> Option<u32> {
        self.unk
    }
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }
    /// Whether a prompt starts with BOS (`tokenizer.ggml.add_bos_token`, llama.cpp's default).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// End of generation: eos, `<|im_end|>`, `<end_of_utterance>`, `<|endoftext|>`.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// Whether `id` is a CONTROL / USER_DEFINED token.
    pub fn is_special(&self, id: u32) -> bool {
        self.token_text(id).is_some_and(|t| self.specials.get(t) == Some(&id))
    }

    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    /// A decoder for a stream of ids.
    pub fn stream(&self) -> StreamDecoder<'_> {
        StreamDecoder { tok: self, pending: Vec::new() }
    }
}

/// Turns ids into text one at a time, holding back bytes until they complete a UTF-8 character
/// (one emoji is often two or more byte tokens).
#[derive(Debug)]
pub struct StreamDecoder<'t> {
    tok: &'t Tokenizer,
    pending: Vec<u8>,
}

impl StreamDecoder<'_> {
    /// The text that `id` completes (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        self.pending.extend_from_slice(self.tok.token_bytes(id));
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // valid_up_to bytes were just checked to be UTF-8.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("checked prefix"));
                    match e.error_len() {
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that can never be UTF-8: replace and go on.
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + n);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is still held back, lossily (call at the end of a stream).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the other 68 to U+0100 + n.
fn gpt2_byte_symbols() -> Vec<(u8, char)> {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
    let mut out: Vec<(u8, char)> = (0..=255u8).filter(|&b| printable(b)).map(|b| (b, b as char)).collect();
    for (n, b) in (0..=255u8).filter(|&b| !printable(b)).enumerate() {
        // 256 + n for n < 68 is in U+0100..U+0143, all valid chars.
        out.push((b, char::from_u32(256 + n as u32).expect("U+0100..U+0143 are chars")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection() {
        let t = gpt2_byte_symbols();
        assert_eq!(t.len(), 256);
        let chars: std::collections::HashSet<char> = t.iter().map(|&(_, c)| c).collect();
        assert_eq!(chars.len(), 256);
        assert!(t.contains(&(b' ', 'Ġ')) && t.contains(&(b'\n', 'Ċ')));
    }

    #[test]
    fn regexes_compile() {
        for re in [RE_GPT2, RE_DIGIT, RE_QWEN2, RE_LLAMA3] {
            Split::new(SplitPattern::Regex(re.to_string()), SplitDelimiterBehavior::Isolated, false).unwrap();
        }
    }
}
