//! A procedural visual-question-answering dataset, deterministic from a seed: scenes of a few
//! coloured shapes on plain, textured or cluttered backgrounds (`scene`), short-answer questions
//! about them (`qa`), and train / validation / test splits by seed range (`split`). Objects cover a
//! minority of a ViT's patches, and `Scene::object_patches` says which, so pruning has room to
//! work and a ground truth to be scored against.

pub mod qa;
pub mod scene;
pub mod split;

pub use qa::{Question, QuestionKind, Relation, questions};
pub use scene::{Background, ClutterItem, Colour, Object, Scene, SceneConfig, Shape, Size};
pub use split::{Sample, Split, sample};

/// The words that question sentences use besides colour and shape names and answers; "?" is the
/// one punctuation token (it ends every question, attached to the last word).
const QUESTION_WORDS: [&str; 24] = [
    "?", "How", "Is", "What", "a", "above", "an", "are", "at", "below", "bottom", "colour", "is", "left", "many",
    "object", "objects", "of", "on", "or", "right", "shape", "the", "there",
];

/// Every word a question or answer can contain, sorted and deduplicated: sentence words (with
/// their capitalisation), colour and shape names, shape plurals, count digits, answers, and "?".
/// Enough to train a small tokenizer on.
pub fn vocabulary() -> Vec<&'static str> {
    let mut words: Vec<&'static str> = QUESTION_WORDS.to_vec();
    words.extend(Shape::ALL.map(Shape::plural));
    words.extend(answers());
    words.sort_unstable();
    words.dedup();
    words
}

/// Every answer a generated scene's question can have, sorted and deduplicated.
pub fn answers() -> Vec<&'static str> {
    let mut words: Vec<&'static str> = Vec::new();
    words.extend(Colour::ALL.map(Colour::name));
    words.extend(Shape::ALL.map(Shape::name));
    words.extend(qa::NUMBERS);
    words.extend(["left", "right", "top", "bottom", qa::YES, qa::NO]);
    words.sort_unstable();
    words.dedup();
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_and_answers_are_sorted_ascii_and_nested() {
        let (vocab, answers) = (vocabulary(), answers());
        for list in [&vocab, &answers] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "sorted and deduplicated");
            assert!(list.iter().all(|w| w.is_ascii() && !w.is_empty() && !w.contains(' ')));
        }
        assert!(answers.iter().all(|a| vocab.contains(a) && *a == a.to_lowercase()));
        assert!(vocab.contains(&"crosses") && vocab.contains(&"?") && answers.contains(&"8"));
    }
}
