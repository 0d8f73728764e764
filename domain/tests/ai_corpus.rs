//! The intent engine against the labelled corpus (`tests/data/ai_corpus.jsonl`):
//! every sentence's intent and parameters as a careful reader labels them.
//! The accuracy printed here is the figure in the README.

use opspilot_domain::ai::intent::parse;
use serde_json::Value;

fn corpus() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/ai_corpus.jsonl")).expect("the corpus is in the repository");
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("a corpus line is JSON")).collect()
}

#[test]
fn the_engine_understands_the_corpus() {
    let corpus = corpus();
    assert!(corpus.len() >= 300, "the corpus has {} sentences", corpus.len());
    let (mut intents, mut exact) = (0, 0);
    let mut wrong = Vec::new();
    for case in &corpus {
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
    println!("corpus: {} sentences, intent accuracy {:.1}%, exact (intent + every parameter) {:.1}%", corpus.len(), 100.0 * intents as f64 / n, 100.0 * exact as f64 / n);
    for w in &wrong {
        println!("{w}");
    }
    assert!(intents as f64 / n >= 0.97, "intent accuracy fell below 97%");
    assert!(exact as f64 / n >= 0.93, "exact accuracy fell below 93%");
}

#[test]
fn a_sentence_that_states_nothing_becomes_a_question_not_a_guess() {
    for s in ["发布", "deploy to production", "回滚", "approve", "preflight"] {
        let p = parse(s);
        assert!(!p.missing.is_empty() || p.intent.as_str() == "unknown", "{s}: {p:?}");
    }
}
