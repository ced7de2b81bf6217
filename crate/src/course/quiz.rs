//! Multiple-choice knowledge checks that score a student's answers.

use crate::plot::{html_escape, Table};
use std::fmt;

/// One multiple-choice question.
#[derive(Clone, Debug, PartialEq)]
pub struct Question {
    /// The question.
    pub prompt: &'static str,
    /// The options, labelled a, b, c… in order.
    pub options: &'static [&'static str],
    /// Index of the correct option.
    pub answer: usize,
    /// Why that option is right.
    pub explanation: &'static str,
}

/// A knowledge check: questions, then [`Quiz::score`] on the student's letters.
#[derive(Clone, Debug, PartialEq)]
pub struct Quiz {
    /// The questions in order.
    pub questions: Vec<Question>,
}

/// The score of one attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct QuizResult {
    /// Correct answers.
    pub correct: usize,
    /// Questions in the quiz.
    pub total: usize,
    /// Per question: the answer given (if any), whether it is right, and the explanation.
    pub feedback: Table,
}

fn letter(i: usize) -> char {
    (b'a' + i as u8) as char
}

impl Quiz {
    /// Scores answers given as letters (`'a'`, `'b'`…; `'?'` or a blank for "no answer").
    ///
    /// The correct letter and its explanation are shown only for questions
    /// that were answered: an unanswered attempt gives the key away for none,
    /// so the notebook's saved output (and a student handout) does not either.
    pub fn score(&self, answers: &[char]) -> QuizResult {
        let mut feedback = Table::new(&["#", "your answer", "result", "correct", "why"]);
        let mut correct = 0;
        for (i, q) in self.questions.iter().enumerate() {
            let given = answers.get(i).map(|c| c.to_ascii_lowercase()).filter(|c| c.is_ascii_lowercase());
            let right = given == Some(letter(q.answer));
            correct += usize::from(right);
            let row = match given {
                None => ["-".to_string(), "not answered".into(), "answer it to see".into(), String::new()],
                Some(c) => [c.to_string(), (if right { "✓" } else { "✗" }).into(), letter(q.answer).to_string(), q.explanation.into()],
            };
            let [shown, verdict, key, why] = row;
            feedback.push(&[(i + 1).to_string(), shown, verdict, key, why]);
        }
        QuizResult { correct, total: self.questions.len(), feedback }
    }

    /// Every question's correct letter and explanation, one line each: the
    /// instructor's key (notebooks tag the cell that prints it `answer-key`,
    /// so student handouts leave it out).
    pub fn answer_key(&self) -> String {
        self.questions.iter().enumerate().map(|(i, q)| format!("{}. {} — {}\n", i + 1, letter(q.answer), q.explanation)).collect()
    }

    /// The questions as HTML.
    pub fn to_html(&self) -> String {
        let mut s = String::from("<ol>");
        for q in &self.questions {
            s += &format!("<li><p>{}</p><ol type=\"a\">", html_escape(q.prompt));
            for o in q.options {
                s += &format!("<li>{}</li>", html_escape(o));
            }
            s += "</ol></li>";
        }
        s + "</ol>"
    }

    /// Shows the questions in Jupyter (evcxr).
    pub fn evcxr_display(&self) {
        crate::plot::emit("text/html", &self.to_html());
    }
}

impl fmt::Display for Quiz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, q) in self.questions.iter().enumerate() {
            writeln!(f, "{}. {}", i + 1, q.prompt)?;
            for (j, o) in q.options.iter().enumerate() {
                writeln!(f, "   ({}) {}", letter(j), o)?;
            }
        }
        Ok(())
    }
}

impl QuizResult {
    /// Shows the score and feedback in Jupyter (evcxr).
    pub fn evcxr_display(&self) {
        let html = format!("<p><b>Score: {} / {}</b></p>{}", self.correct, self.total, self.feedback.to_html());
        crate::plot::emit("text/html", &html);
    }
}

impl fmt::Display for QuizResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Score: {} / {}", self.correct, self.total)?;
        write!(f, "{}", self.feedback)
    }
}
