//! Chat templates: `tokenizer.chat_template` (Jinja) rendered with minijinja the way Hugging Face
//! and llama.cpp render it (`trim_blocks`, `lstrip_blocks`, Python string methods, a
//! `raise_exception` function), with a built-in template per family when the file has none.
//!
//! The output is prompt text with [`MEDIA_MARKER`] wherever an image goes; `prompt.rs` splits on
//! it and splices the image's tokens there, as mtmd does with its `<__media__>` marker.
//!
//! Two ways to put an image into a message ([`ImageMarkup`]):
//! - `Mtmd` (reference mode): what `llama-mtmd-cli` does. The message content is one string with
//!   the marker in place of the image (`"What is this?<__media__>"` — the CLI appends the marker
//!   after the prompt); templates that only read typed content (SmolVLM's) get it as one
//!   `{"type": "text"}` part, as llama.cpp's `requires_typed_content` handling does.
//! - `Hf`: Hugging Face's processor form, `[{"type": "image"}, {"type": "text", "text": ...}]`;
//!   the template writes its own image text (`<image>` for SmolVLM), which becomes the marker.
//!   Templates that only take string content (chatml, vicuna) fall back to the string form.

use minijinja::{Environment, ErrorKind, Value, context};
use serde::Serialize;

use crate::gguf::Gguf;
use crate::model::Error;
use crate::model::config::{ProjectorKind, TextArch};
use crate::model::names::TOKENIZER_CHAT_TEMPLATE;

/// Where an image goes in rendered prompt text (mtmd's default media marker).
pub const MEDIA_MARKER: &str = "<__media__>";

/// One piece of a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    Image,
}

/// A chat message: a role (`system`, `user`, `assistant`) and its parts in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub role: String,
    pub parts: Vec<Part>,
}

impl Message {
    pub fn new(role: &str, parts: Vec<Part>) -> Message {
        Message { role: role.to_string(), parts }
    }
    pub fn text(role: &str, text: &str) -> Message {
        Message::new(role, vec![Part::Text(text.to_string())])
    }
    pub fn n_images(&self) -> usize {
        self.parts.iter().filter(|p| **p == Part::Image).count()
    }
    /// The content as one string, images as [`MEDIA_MARKER`].
    fn flat(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.as_str(),
                Part::Image => MEDIA_MARKER,
            })
            .collect()
    }
}

/// How images are written into the template's messages (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageMarkup {
    Mtmd,
    Hf,
}

/// The built-in templates, used when a file has no `tokenizer.chat_template`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateFamily {
    /// Qwen2-Instruct's ChatML (qwen2 text models, e.g. nanoLLaVA).
    Chatml,
    /// SmolVLM-Instruct's (idefics3 projector over a llama text model).
    Smolvlm,
    /// llama.cpp's `--chat-template vicuna` (what mtmd-cli tells old LLaVA users to pass), as a
    /// Jinja template: "USER: ...\nASSISTANT:".
    Vicuna,
}

impl TemplateFamily {
    /// The fallback for a model pair: the text architecture decides for qwen2, the projector
    /// for llama (idefics3 -> SmolVLM, mlp -> vicuna / LLaVA-1.5).
    pub fn for_model(text: TextArch, projector: ProjectorKind) -> TemplateFamily {
        match (text, projector) {
            (TextArch::Qwen2, _) => TemplateFamily::Chatml,
            (TextArch::Llama, ProjectorKind::Idefics3) => TemplateFamily::Smolvlm,
            (TextArch::Llama, ProjectorKind::Mlp) => TemplateFamily::Vicuna,
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            // Qwen2-7B-Instruct tokenizer_config.json.
            TemplateFamily::Chatml => concat!(
                "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}",
                "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}",
                "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}",
                "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
            ),
            // SmolVLM-500M-Instruct chat_template.json (shared-notes/smolvlm-gguf.md §3).
            TemplateFamily::Smolvlm => concat!(
                "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}",
                "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}",
                "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}",
                "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n",
                "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
            ),
            // llama-chat.cpp LLM_CHAT_TEMPLATE_VICUNA.
            TemplateFamily::Vicuna => concat!(
                "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}",
                "{% elif message['role'] == 'user' %}{{ 'USER: ' + message['content'] + '\n' }}",
                "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' + message['content'] + '</s>\n' }}",
                "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
            ),
        }
    }
}

/// A compiled chat template with its special-token variables.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// From the file (`true`) or built in.
    pub from_file: bool,
    bos_token: String,
    eos_token: String,
    /// What the template writes for a `{"type": "image"}` part (`Hf` markup).
    image_text: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("from_file", &self.from_file).finish()
    }
}

const NAME: &str = "chat";

impl ChatTemplate {
    /// Compiles `source`; `bos_token` / `eos_token` are the texts the template may print.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, Error> {
        let mut env = Environment::new();
        // transformers and llama.cpp (minja) both render with trim_blocks + lstrip_blocks.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| Error::Unsupported(format!("chat template syntax: {e}")))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_function("raise_exception", |msg: String| -> Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| Error::Unsupported(format!("chat template does not compile: {e:#}")))?;
        Ok(ChatTemplate {
            env,
            from_file: false,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            image_text: "<image>".to_string(),
        })
    }

    /// The file's `tokenizer.chat_template`, else the family's built-in one.
    pub fn from_gguf(
        g: &Gguf,
        family: TemplateFamily,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<ChatTemplate, Error> {
        match g.get_opt::<String>(TOKENIZER_CHAT_TEMPLATE)? {
            Some(src) => {
                let mut t = ChatTemplate::new(&src, bos_token, eos_token)
                    .map_err(|e| Error::Unsupported(format!("{}: {TOKENIZER_CHAT_TEMPLATE}: {e}", g.name())))?;
                t.from_file = true;
                Ok(t)
            }
            None => ChatTemplate::new(family.source(), bos_token, eos_token),
        }
    }

    /// What a `{"type": "image"}` part renders to in this template (default `<image>`).
    pub fn set_image_text(&mut self, text: &str) {
        self.image_text = text.to_string();
    }

    /// The prompt for `messages`, ending with the assistant's turn opened
    /// (`add_generation_prompt = true`); images appear as [`MEDIA_MARKER`].
    pub fn render(&self, messages: &[Message], markup: ImageMarkup) -> Result<String, Error> {
        self.render_with(messages, markup, true)
    }

    /// As `render`; `add_generation_prompt = false` renders a finished conversation (for the
    /// follow-up diff of llama.cpp's `common_chat_format_single`).
    pub fn render_with(
        &self,
        messages: &[Message],
        markup: ImageMarkup,
        add_generation_prompt: bool,
    ) -> Result<String, Error> {
        let (takes_string, takes_typed) = self.probe();
        if markup == ImageMarkup::Hf && takes_typed {
            return self.render_structured(messages, add_generation_prompt);
        }
        let flat: Vec<(String, String)> = messages.iter().map(|m| (m.role.clone(), m.flat())).collect();
        // llama.cpp's `requires_typed_content`: only when strings are ignored and parts are not.
        if !takes_string && takes_typed {
            let typed: Vec<TypedMsg> =
                flat.iter().map(|(role, c)| TypedMsg { role, content: vec![TypedPart::text(c.clone())] }).collect();
            return self.run(&typed, add_generation_prompt);
        }
        let plain: Vec<PlainMsg> = flat.iter().map(|(role, c)| PlainMsg { role, content: c.clone() }).collect();
        self.run(&plain, add_generation_prompt)
    }

    /// Whether the template prints string content and typed text parts: a probe message whose
    /// text must show up in the output (llama.cpp's template capability check).
    fn probe(&self) -> (bool, bool) {
        const NEEDLE: &str = "glimpse-probe-4f1c";
        let plain = [PlainMsg { role: "user", content: NEEDLE.to_string() }];
        let typed = [TypedMsg { role: "user", content: vec![TypedPart::text(NEEDLE.to_string())] }];
        let shows = |r: Result<String, Error>| r.is_ok_and(|s| s.contains(NEEDLE));
        (shows(self.run(&plain, true)), shows(self.run(&typed, true)))
    }

    /// Hugging Face form: the template writes its image text, which becomes the marker.
    fn render_structured(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, Error> {
        let typed: Vec<TypedMsg> = messages
            .iter()
            .map(|m| TypedMsg {
                role: &m.role,
                content: m
                    .parts
                    .iter()
                    .map(|p| match p {
                        Part::Text(t) => TypedPart::text(t.clone()),
                        Part::Image => TypedPart { kind: "image", text: None },
                    })
                    .collect(),
            })
            .collect();
        let out = self.run(&typed, add_generation_prompt)?;
        let n_images: usize = messages.iter().map(Message::n_images).sum();
        let found = out.matches(self.image_text.as_str()).count();
        if n_images == 0 {
            return Ok(out);
        }
        if found != n_images {
            return Err(Error::Unsupported(format!(
                "the rendered prompt has {found} '{}' for {n_images} images (does the question contain it?)",
                self.image_text
            )));
        }
        Ok(out.replace(self.image_text.as_str(), MEDIA_MARKER))
    }

    fn run<M: Serialize>(&self, messages: &[M], add_generation_prompt: bool) -> Result<String, Error> {
        let tmpl = self.env.get_template(NAME).map_err(|e| Error::Unsupported(format!("chat template: {e}")))?;
        tmpl.render(context! {
            messages => Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| Error::Unsupported(format!("chat template: {e:#}")))
    }
}

#[derive(Serialize)]
struct PlainMsg<'a> {
    role: &'a str,
    content: String,
}

#[derive(Serialize)]
struct TypedMsg<'a> {
    role: &'a str,
    content: Vec<TypedPart>,
}

#[derive(Serialize)]
struct TypedPart {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

impl TypedPart {
    fn text(t: String) -> TypedPart {
        TypedPart { kind: "text", text: Some(t) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(q: &str) -> Vec<Message> {
        vec![Message::new("user", vec![Part::Image, Part::Text(q.to_string())])]
    }

    /// SmolVLM's template in HF form gives the processor's prompt (notes §3).
    #[test]
    fn smolvlm_hf_one_image() {
        let t = ChatTemplate::new(TemplateFamily::Smolvlm.source(), "<|im_start|>", "<end_of_utterance>").unwrap();
        let out = t.render(&ask("What is this?"), ImageMarkup::Hf).unwrap();
        assert_eq!(out, "<|im_start|>User:<__media__>What is this?<end_of_utterance>\nAssistant:");
    }

    /// mtmd-cli: string content "question<__media__>", typed as one text part for SmolVLM.
    #[test]
    fn smolvlm_mtmd_one_image() {
        let t = ChatTemplate::new(TemplateFamily::Smolvlm.source(), "<|im_start|>", "<end_of_utterance>").unwrap();
        let msgs = vec![Message::new("user", vec![Part::Text("What is this?".into()), Part::Image])];
        let out = t.render(&msgs, ImageMarkup::Mtmd).unwrap();
        assert_eq!(out, "<|im_start|>User: What is this?<__media__><end_of_utterance>\nAssistant:");
    }

    #[test]
    fn chatml_falls_back_to_string_content() {
        let t = ChatTemplate::new(TemplateFamily::Chatml.source(), "<|endoftext|>", "<|im_end|>").unwrap();
        let out = t.render(&ask("Hi"), ImageMarkup::Hf).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<__media__>Hi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn vicuna_multi_turn() {
        let t = ChatTemplate::new(TemplateFamily::Vicuna.source(), "<s>", "</s>").unwrap();
        let msgs = vec![
            Message::new("user", vec![Part::Image, Part::Text("\nWhat?".into())]),
            Message::text("assistant", "A cat."),
            Message::text("user", "Colour?"),
        ];
        let out = t.render(&msgs, ImageMarkup::Mtmd).unwrap();
        assert_eq!(out, "USER: <__media__>\nWhat?\nASSISTANT: A cat.</s>\nUSER: Colour?\nASSISTANT:");
    }

    #[test]
    fn raise_exception_and_python_methods() {
        let src = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}\
                   {{ messages[0]['content'].strip().upper() }}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        assert_eq!(t.render(&[Message::text("user", "  hi ")], ImageMarkup::Mtmd).unwrap(), "HI");
        let err = t.render(&[Message::text("system", "x")], ImageMarkup::Mtmd).unwrap_err();
        assert!(err.to_string().contains("no system"), "{err}");
    }

    #[test]
    fn bad_template_is_error() {
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
    }
}
