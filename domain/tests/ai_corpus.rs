//! The intent engine against the labelled corpus (`tests/data/ai_corpus.jsonl`):
//! every sentence's intent and parameters as a careful reader labels them.
//! The accuracy printed here is the figure in the README.

use opspilot_domain::ai::intent::parse;
use serde_json::Value;

fn corpus() -> Vec<Value> {
    load("ai_corpus.jsonl")
}

fn load(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{}/../tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).expect("the corpus is in the repository");
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("a corpus line is JSON")).collect()
}

/// Intent and exact accuracy over `corpus`, printing what it got wrong.
fn score(name: &str, corpus: &[Value]) -> (f64, f64) {
    let (mut intents, mut exact) = (0, 0);
    let mut wrong = Vec::new();
    for case in corpus {
        let text = case["text"].as_str().unwrap();
        let got = parse(text);
        let got_params = serde_json::to_value(&got.params).unwrap();
        let intent_ok = got.intent.as_str() == case["intent"];
        intents += usize::from(intent_ok);
        if intent_ok && got_params == case["params"] {
            exact += 1;
        } else {
            wrong.push(format!("{text}\n    want {} {}\n    got  {} {}", case["intent"], case["params"], got.intent.as_str(), got_params));
        }
    }
    let n = corpus.len() as f64;
    println!("{name}: {} sentences, intent accuracy {:.1}%, exact (intent + every parameter) {:.1}%", corpus.len(), 100.0 * intents as f64 / n, 100.0 * exact as f64 / n);
    for w in &wrong {
        println!("{w}");
    }
    (intents as f64 / n, exact as f64 / n)
}

#[test]
fn the_engine_understands_the_corpus() {
    let corpus = corpus();
    assert!(corpus.len() >= 300, "the corpus has {} sentences", corpus.len());
    let (intents, exact) = score("corpus", &corpus);
    assert!(intents >= 0.97, "intent accuracy fell below 97%");
    assert!(exact >= 0.93, "exact accuracy fell below 93%");
}

/// A second corpus, written apart from the engine and never tuned against:
/// the honest figure for sentences the engine has not seen.
#[test]
fn the_engine_understands_most_of_a_corpus_it_was_not_tuned_on() {
    let (intents, exact) = score("held-out corpus", &load("ai_corpus_heldout.jsonl"));
    assert!(intents >= 0.85 && exact >= 0.75, "held-out accuracy fell: intent {intents:.3}, exact {exact:.3}");
}

#[test]
fn a_sentence_that_states_nothing_becomes_a_question_not_a_guess() {
    for s in ["发布", "deploy to production", "回滚", "approve", "preflight"] {
        let p = parse(s);
        assert!(!p.missing.is_empty() || p.intent.as_str() == "unknown", "{s}: {p:?}");
    }
}
