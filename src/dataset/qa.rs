//! Questions about a scene with one-word lowercase answers: colour, shape, count, position
//! (left/right, top/bottom), existence and pairwise relations (left of, right of, above, below).
//! Only unambiguous questions are asked: objects are named by a colour and shape no other object
//! shares, positions only when the object sits well clear of the middle line, relations only when
//! the centres are well apart along the asked axis. All text is ASCII.

use super::scene::{Colour, MAX_OBJECTS, Object, Scene, Shape};
use crate::rng::SplitMix64;

/// How far (normalised) an object's centre must be from the middle line before "left or right" /
/// "top or bottom" is asked about it; larger objects need their whole bounding circle clear too.
pub const POSITION_MARGIN: f32 = 0.15;

/// How far apart (normalised) two centres must be along an axis before a relation is asked.
pub const RELATION_GAP: f32 = 0.12;

/// Every count answer a generated scene can have ("0" to "8").
pub const NUMBERS: [&str; MAX_OBJECTS + 1] = ["0", "1", "2", "3", "4", "5", "6", "7", "8"];

/// The positive answer of yes/no questions.
pub const YES: &str = "yes";
/// The negative answer of yes/no questions.
pub const NO: &str = "no";

/// Salt mixed into the question seed so question draws and scene draws use unrelated streams.
const QA_SALT: u64 = 0x0A5C_0F0E_57A0_0002;

/// Clearance (normalised) between an object's bounding circle and the middle line required on
/// top of `POSITION_MARGIN` for position questions.
const POSITION_CLEARANCE: f32 = 0.05;

/// What a question asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuestionKind {
    /// "What colour is the star?" -> "red".
    Colour,
    /// "What shape is the blue object?" -> "circle".
    Shape,
    /// "How many triangles are there?" -> "2".
    Count,
    /// "Is the red circle on the left or the right?" -> "left" (top/bottom likewise).
    Position,
    /// "Is there a green square?" -> "yes" / "no".
    Exists,
    /// "Is the red circle left of the blue square?" -> "yes" / "no" (right of, above, below).
    Relation,
}

impl QuestionKind {
    /// Every kind, in a fixed order.
    pub const ALL: [QuestionKind; 6] = [
        QuestionKind::Colour,
        QuestionKind::Shape,
        QuestionKind::Count,
        QuestionKind::Position,
        QuestionKind::Exists,
        QuestionKind::Relation,
    ];

    /// The lowercase name ("relation").
    pub fn name(self) -> &'static str {
        match self {
            QuestionKind::Colour => "colour",
            QuestionKind::Shape => "shape",
            QuestionKind::Count => "count",
            QuestionKind::Position => "position",
            QuestionKind::Exists => "exists",
            QuestionKind::Relation => "relation",
        }
    }
}

/// A question about a scene and its single-word lowercase answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Question {
    /// The question, an English sentence ending in "?".
    pub text: String,
    /// The answer: one lowercase word or number.
    pub answer: String,
    pub kind: QuestionKind,
    /// Indices into the scene's objects of those the answer is read from: the object named or
    /// described, both objects of a relation, every object counted. Empty when the answer rests
    /// on an absence ("no" to an existence question, a count of "0").
    pub about: Vec<usize>,
    /// A relation question's relation (`about[0]` stands in it to `about[1]`).
    pub relation: Option<Relation>,
}

impl Question {
    fn new(kind: QuestionKind, text: String, answer: &str, about: Vec<usize>) -> Self {
        Self { text, answer: answer.to_string(), kind, about, relation: None }
    }
}

/// A pairwise spatial relation between two objects' centres.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Relation {
    LeftOf,
    RightOf,
    Above,
    Below,
}

impl Relation {
    pub const ALL: [Relation; 4] = [Relation::LeftOf, Relation::RightOf, Relation::Above, Relation::Below];

    pub fn phrase(self) -> &'static str {
        match self {
            Relation::LeftOf => "left of",
            Relation::RightOf => "right of",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }

    /// Whether `a` stands in the relation to `b`; `None` when the centres are too close along the
    /// axis to say.
    fn holds(self, a: &Object, b: &Object) -> Option<bool> {
        let d = match self {
            Relation::LeftOf => b.centre.0 - a.centre.0,
            Relation::RightOf => a.centre.0 - b.centre.0,
            Relation::Above => b.centre.1 - a.centre.1,
            Relation::Below => a.centre.1 - b.centre.1,
        };
        if d >= RELATION_GAP {
            Some(true)
        } else if d <= -RELATION_GAP {
            Some(false)
        } else {
            None
        }
    }
}

/// A balanced set of unambiguous questions about `scene`, in an order shuffled by `seed`:
/// up to two each of colour, shape, count and position questions, and one "yes" plus one "no"
/// question each of existence and relation (an unanswerable "yes" side, e.g. an empty scene's
/// existence question, leaves a lone "no"). Every kind appears whenever the scene allows it.
/// Deterministic in `(scene, seed)`.
pub fn questions(scene: &Scene, seed: u64) -> Vec<Question> {
    let mut rng = SplitMix64::new(seed ^ QA_SALT);
    // Objects that a colour-and-shape label names unambiguously.
    let named: Vec<(usize, &Object)> = scene
        .objects
        .iter()
        .enumerate()
        .filter(|(_, o)| scene.objects.iter().filter(|p| p.colour == o.colour && p.shape == o.shape).count() == 1)
        .collect();
    let mut out = Vec::new();
    let colour = colour_questions(scene);
    take(&mut rng, colour, 2, &mut out);
    let shape = shape_questions(scene);
    take(&mut rng, shape, 2, &mut out);
    let count = count_questions(scene, &mut rng);
    take(&mut rng, count, 2, &mut out);
    let position = position_questions(&named);
    take(&mut rng, position, 2, &mut out);
    let exists = exists_questions(scene, &named);
    take_balanced(&mut rng, exists, &mut out);
    let relation = relation_questions(&named);
    take_balanced(&mut rng, relation, &mut out);
    rng.shuffle(&mut out);
    out
}

/// Appends up to `n` randomly chosen `candidates` to `out`.
fn take(rng: &mut SplitMix64, mut candidates: Vec<Question>, n: usize, out: &mut Vec<Question>) {
    rng.shuffle(&mut candidates);
    out.extend(candidates.into_iter().take(n));
}

/// Appends one random "yes" and one random "no" candidate to `out`, or a lone "no" when no
/// candidate is answered "yes".
fn take_balanced(rng: &mut SplitMix64, candidates: Vec<Question>, out: &mut Vec<Question>) {
    let (yes, no): (Vec<Question>, Vec<Question>) = candidates.into_iter().partition(|q| q.answer == YES);
    if !yes.is_empty() {
        if no.is_empty() {
            return;
        }
        take(rng, yes, 1, out);
    }
    take(rng, no, 1, out);
}

/// "What colour is the star?" for every shape exactly one object has.
fn colour_questions(scene: &Scene) -> Vec<Question> {
    Shape::ALL
        .iter()
        .filter_map(|&shape| {
            only(scene.objects.iter().enumerate().filter(|(_, o)| o.shape == shape)).map(|(i, object)| {
                Question::new(
                    QuestionKind::Colour,
                    format!("What colour is the {}?", shape.name()),
                    object.colour.name(),
                    vec![i],
                )
            })
        })
        .collect()
}

/// "What shape is the blue object?" for every colour exactly one object has.
fn shape_questions(scene: &Scene) -> Vec<Question> {
    Colour::ALL
        .iter()
        .filter_map(|&colour| {
            only(scene.objects.iter().enumerate().filter(|(_, o)| o.colour == colour)).map(|(i, object)| {
                Question::new(
                    QuestionKind::Shape,
                    format!("What shape is the {} object?", colour.name()),
                    object.shape.name(),
                    vec![i],
                )
            })
        })
        .collect()
}

/// The single item of `items`, `None` when there are none or several.
fn only<'a>(mut items: impl Iterator<Item = (usize, &'a Object)>) -> Option<(usize, &'a Object)> {
    let first = items.next()?;
    items.next().is_none().then_some(first)
}

/// "How many objects are there?", answered for `scene`.
pub fn object_count_question(scene: &Scene) -> Question {
    let all = (0..scene.objects.len()).collect();
    Question::new(QuestionKind::Count, "How many objects are there?".into(), &number(scene.objects.len()), all)
}

/// A count as an answer: one of `NUMBERS` (or plain digits for a hand-built scene with more than
/// `MAX_OBJECTS` objects).
fn number(n: usize) -> String {
    NUMBERS.get(n).map_or_else(|| n.to_string(), |s| s.to_string())
}

/// How many objects there are in all, of one shape and of one colour (the shape and colour are
/// those of an object present two times in three, any at all otherwise, so "0" answers occur).
fn count_questions(scene: &Scene, rng: &mut SplitMix64) -> Vec<Question> {
    let objects = &scene.objects;
    let mut out = vec![object_count_question(scene)];
    let present = rng.below(3) < 2;
    let shape = match rng.pick(objects) {
        Some(object) if present => object.shape,
        _ => Shape::ALL[rng.below(Shape::ALL.len())],
    };
    let about = indices(objects, |o| o.shape == shape);
    let text = format!("How many {} are there?", shape.plural());
    out.push(Question::new(QuestionKind::Count, text, &number(about.len()), about));
    let present = rng.below(3) < 2;
    let colour = match rng.pick(objects) {
        Some(object) if present => object.colour,
        _ => Colour::ALL[rng.below(Colour::ALL.len())],
    };
    let about = indices(objects, |o| o.colour == colour);
    let text = format!("How many {} objects are there?", colour.name());
    out.push(Question::new(QuestionKind::Count, text, &number(about.len()), about));
    out
}

/// The indices of the `objects` that `pick` selects.
fn indices(objects: &[Object], pick: impl Fn(&Object) -> bool) -> Vec<usize> {
    objects.iter().enumerate().filter(|(_, o)| pick(o)).map(|(i, _)| i).collect()
}

/// Left/right and top/bottom questions for objects clearly on one side of the middle line.
fn position_questions(named: &[(usize, &Object)]) -> Vec<Question> {
    let mut out = Vec::new();
    for &(i, object) in named {
        let margin = POSITION_MARGIN.max(object.radius() + POSITION_CLEARANCE);
        let (dx, dy) = (object.centre.0 - 0.5, object.centre.1 - 0.5);
        if dx.abs() >= margin {
            out.push(Question::new(
                QuestionKind::Position,
                format!("Is the {} on the left or the right?", object.label()),
                if dx < 0.0 { "left" } else { "right" },
                vec![i],
            ));
        }
        if dy.abs() >= margin {
            out.push(Question::new(
                QuestionKind::Position,
                format!("Is the {} at the top or the bottom?", object.label()),
                if dy < 0.0 { "top" } else { "bottom" },
                vec![i],
            ));
        }
    }
    out
}

/// "Is there a green square?": "yes" for every named object; "no" for absent colour-and-shape
/// pairs that share the colour or the shape of some object (near misses), or for any absent pair
/// when the scene is empty.
fn exists_questions(scene: &Scene, named: &[(usize, &Object)]) -> Vec<Question> {
    let ask = |colour: Colour, shape: Shape, answer: &str, about: Vec<usize>| {
        let article = if colour.name().starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        let text = format!("Is there {article} {} {}?", colour.name(), shape.name());
        Question::new(QuestionKind::Exists, text, answer, about)
    };
    let mut out: Vec<Question> = named.iter().map(|&(i, o)| ask(o.colour, o.shape, YES, vec![i])).collect();
    let objects = &scene.objects;
    for colour in Colour::ALL {
        for shape in Shape::ALL {
            let absent = !objects.iter().any(|o| o.colour == colour && o.shape == shape);
            let near = objects.is_empty() || objects.iter().any(|o| o.colour == colour || o.shape == shape);
            if absent && near {
                out.push(ask(colour, shape, NO, Vec::new()));
            }
        }
    }
    out
}

/// "Is the red circle left of the blue square?" for every ordered pair of named objects and
/// relation whose answer is clear.
fn relation_questions(named: &[(usize, &Object)]) -> Vec<Question> {
    let mut out = Vec::new();
    for &(i, a) in named {
        for &(j, b) in named {
            if i == j {
                continue;
            }
            for relation in Relation::ALL {
                if let Some(holds) = relation.holds(a, b) {
                    let text = format!("Is the {} {} the {}?", a.label(), relation.phrase(), b.label());
                    let answer = if holds { YES } else { NO };
                    let question = Question::new(QuestionKind::Relation, text, answer, vec![i, j]);
                    out.push(Question { relation: Some(relation), ..question });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::scene::SceneConfig;
    use crate::dataset::{answers, vocabulary};

    fn scenes(n: u64) -> impl Iterator<Item = Scene> {
        (0..n).map(|seed| Scene::generate(seed, &SceneConfig::default()))
    }

    /// The one object called `label` ("red circle"); fails unless exactly one matches.
    fn the<'a>(scene: &'a Scene, label: &str) -> &'a Object {
        let found: Vec<&Object> =
            scene.objects.iter().filter(|o| format!("{} {}", o.colour.name(), o.shape.name()) == label).collect();
        assert_eq!(found.len(), 1, "{label:?} must name exactly one object");
        found[0]
    }

    fn yes_no(b: bool) -> String {
        if b { "yes" } else { "no" }.to_string()
    }

    /// The answer recomputed from the question text and the object list alone, asserting that the
    /// question is unambiguous.
    fn recompute(scene: &Scene, text: &str) -> String {
        let objects = &scene.objects;
        let t = text.strip_suffix('?').expect("ends with ?");
        if let Some(shape) = t.strip_prefix("What colour is the ") {
            let found: Vec<&Object> = objects.iter().filter(|o| o.shape.name() == shape).collect();
            assert_eq!(found.len(), 1, "{text}");
            return found[0].colour.name().into();
        }
        if let Some(colour) = t.strip_prefix("What shape is the ").and_then(|r| r.strip_suffix(" object")) {
            let found: Vec<&Object> = objects.iter().filter(|o| o.colour.name() == colour).collect();
            assert_eq!(found.len(), 1, "{text}");
            return found[0].shape.name().into();
        }
        if let Some(what) = t.strip_prefix("How many ").and_then(|r| r.strip_suffix(" are there")) {
            let n = if what == "objects" {
                objects.len()
            } else if let Some(colour) = what.strip_suffix(" objects") {
                objects.iter().filter(|o| o.colour.name() == colour).count()
            } else {
                objects.iter().filter(|o| o.shape.plural() == what).count()
            };
            return n.to_string();
        }
        if let Some(label) = t.strip_prefix("Is the ").and_then(|r| r.strip_suffix(" on the left or the right")) {
            let x = the(scene, label).centre.0;
            assert!((x - 0.5).abs() >= 0.15, "{text}: x = {x}");
            return if x < 0.5 { "left" } else { "right" }.into();
        }
        if let Some(label) = t.strip_prefix("Is the ").and_then(|r| r.strip_suffix(" at the top or the bottom")) {
            let y = the(scene, label).centre.1;
            assert!((y - 0.5).abs() >= 0.15, "{text}: y = {y}");
            return if y < 0.5 { "top" } else { "bottom" }.into();
        }
        if let Some(label) = t.strip_prefix("Is there a ").or_else(|| t.strip_prefix("Is there an ")) {
            let article_ok = t.starts_with("Is there an ") == label.starts_with('o');
            assert!(article_ok, "{text}: article");
            return yes_no(objects.iter().any(|o| format!("{} {}", o.colour.name(), o.shape.name()) == label));
        }
        let rest = t.strip_prefix("Is the ").unwrap_or_else(|| panic!("unknown question {text}"));
        let (left, b) = rest.split_once(" the ").unwrap_or_else(|| panic!("unknown question {text}"));
        let b = the(scene, b);
        let relations = [(" left of", 0, 1.0), (" right of", 0, -1.0), (" above", 1, 1.0), (" below", 1, -1.0)];
        let (label, axis, sign) = relations
            .iter()
            .find_map(|&(phrase, axis, sign)| left.strip_suffix(phrase).map(|label| (label, axis, sign)))
            .unwrap_or_else(|| panic!("unknown relation in {text}"));
        let a = the(scene, label);
        let d = sign * if axis == 0 { b.centre.0 - a.centre.0 } else { b.centre.1 - a.centre.1 };
        assert!(d.abs() >= 0.1, "{text}: ambiguous, d = {d}");
        yes_no(d > 0.0)
    }

    #[test]
    fn answers_are_correct_by_independent_check() {
        let (vocab, answers) = (vocabulary(), answers());
        for scene in scenes(500) {
            for q in questions(&scene, scene.seed) {
                assert_eq!(q.answer, recompute(&scene, &q.text), "seed {}: {}", scene.seed, q.text);
                assert!(q.text.is_ascii() && q.answer.is_ascii());
                assert!(answers.contains(&q.answer.as_str()), "answer {:?} not listed", q.answer);
                assert_eq!(q.answer, q.answer.to_lowercase());
                for word in q.text.trim_end_matches('?').split(' ') {
                    assert!(vocab.contains(&word), "word {word:?} of {:?} not in the vocabulary", q.text);
                }
            }
        }
    }

    /// `about` lists exactly the objects the question describes: the counted ones for a count,
    /// the labelled ones otherwise, none for an absence.
    #[test]
    fn about_lists_the_objects_the_answer_reads() {
        for scene in scenes(300) {
            for q in questions(&scene, scene.seed) {
                let t = &q.text;
                let about: Vec<&Object> = q.about.iter().map(|&i| &scene.objects[i]).collect();
                match q.kind {
                    QuestionKind::Count => assert_eq!(q.answer, about.len().to_string(), "{t}"),
                    QuestionKind::Colour => assert!(about.len() == 1 && t.contains(about[0].shape.name()), "{t}"),
                    QuestionKind::Shape => assert!(about.len() == 1 && t.contains(about[0].colour.name()), "{t}"),
                    QuestionKind::Exists if q.answer == NO => assert!(about.is_empty(), "{t}"),
                    QuestionKind::Position | QuestionKind::Exists => {
                        assert!(about.len() == 1 && t.contains(&about[0].label()), "{t}")
                    }
                    QuestionKind::Relation => {
                        let (a, b) = (about[0].label(), about[1].label());
                        assert!(
                            about.len() == 2
                                && t.starts_with(&format!("Is the {a} "))
                                && t.ends_with(&format!(" the {b}?")),
                            "{t}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn yes_no_balanced_and_every_kind_present() {
        let (mut yes, mut no) = (0usize, 0usize);
        let mut per_kind = [0usize; 6];
        let mut total = 0usize;
        for scene in scenes(500) {
            let asked = questions(&scene, scene.seed);
            yes += asked.iter().filter(|q| q.answer == YES).count();
            no += asked.iter().filter(|q| q.answer == NO).count();
            total += asked.len();
            for (i, kind) in QuestionKind::ALL.iter().enumerate() {
                per_kind[i] += asked.iter().filter(|q| q.kind == *kind).count();
            }
            let has = |kind| asked.iter().any(|q| q.kind == kind);
            assert!(has(QuestionKind::Count) && has(QuestionKind::Exists), "seed {}", scene.seed);
            let unique_shape = Shape::ALL.iter().any(|&sh| scene.objects.iter().filter(|o| o.shape == sh).count() == 1);
            assert_eq!(has(QuestionKind::Colour), unique_shape, "seed {}", scene.seed);
            let unique_colour =
                Colour::ALL.iter().any(|&c| scene.objects.iter().filter(|o| o.colour == c).count() == 1);
            assert_eq!(has(QuestionKind::Shape), unique_colour, "seed {}", scene.seed);
            // A relation is asked whenever two objects are clearly apart along some axis.
            let apart = scene.objects.iter().any(|a| {
                scene
                    .objects
                    .iter()
                    .any(|b| (a.centre.0 - b.centre.0).abs().max((a.centre.1 - b.centre.1).abs()) >= RELATION_GAP)
            });
            assert_eq!(has(QuestionKind::Relation), apart, "seed {}", scene.seed);
        }
        let shares: Vec<String> = QuestionKind::ALL
            .iter()
            .zip(per_kind)
            .map(|(k, n)| format!("{} {:.1}%", k.name(), 100.0 * n as f64 / total as f64))
            .collect();
        eprintln!("questions per scene {:.2}; yes {yes}, no {no}; {}", total as f64 / 500.0, shares.join(", "));
        let imbalance = (yes as f64 - no as f64).abs() / (yes + no) as f64;
        assert!(imbalance <= 0.2, "yes {yes} vs no {no}");
        assert!(per_kind.iter().all(|&n| n > 0));
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let scene = Scene::generate(11, &SceneConfig::default());
        assert_eq!(questions(&scene, 5), questions(&scene, 5));
        let differ = (0..20).any(|s| questions(&scene, s) != questions(&scene, 5));
        assert!(differ);
        let other = Scene::generate(12, &SceneConfig::default());
        assert_ne!(questions(&scene, 5), questions(&other, 5));
    }

    #[test]
    fn empty_scene_still_has_questions() {
        let scene = Scene::generate(1, &SceneConfig { min_objects: 0, max_objects: 0 });
        let asked = questions(&scene, 1);
        assert!(asked.iter().any(|q| q.kind == QuestionKind::Count && q.answer == "0"));
        assert!(asked.iter().any(|q| q.kind == QuestionKind::Exists && q.answer == NO));
        for q in &asked {
            assert_eq!(q.answer, recompute(&scene, &q.text));
        }
    }

    #[test]
    fn duplicate_labels_are_never_asked_about() {
        let mut scene = Scene::generate(4, &SceneConfig { min_objects: 2, max_objects: 2 });
        scene.objects[1].shape = scene.objects[0].shape;
        scene.objects[1].colour = scene.objects[0].colour;
        for q in questions(&scene, 9) {
            assert!(!q.text.contains(&scene.objects[0].label()) || q.kind == QuestionKind::Exists, "{}", q.text);
            assert_eq!(q.answer, recompute(&scene, &q.text));
        }
    }
}
