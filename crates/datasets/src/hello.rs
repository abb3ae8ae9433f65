//! The PyTorch course's one-word task: map "hello" to "ohlol", character by character.

/// The task's characters, in index order: `e`, `h`, `l`, `o`.
pub const HELLO_VOCAB: [char; 4] = ['e', 'h', 'l', 'o'];

/// `("hello", "ohlol")` as indices into [`HELLO_VOCAB`]: `[1, 0, 2, 2, 3]` → `[3, 1, 2, 3, 2]`.
pub fn hello_ohlol() -> (Vec<usize>, Vec<usize>) {
    let index = |text: &str| {
        text.chars()
            .map(|c| HELLO_VOCAB.iter().position(|&v| v == c).unwrap_or(0))
            .collect()
    };
    (index("hello"), index("ohlol"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_spell_the_words() {
        let (x, y) = hello_ohlol();
        let spell = |ids: &[usize]| ids.iter().map(|&i| HELLO_VOCAB[i]).collect::<String>();
        assert_eq!((spell(&x), spell(&y)), ("hello".into(), "ohlol".into()));
        assert_eq!(x, vec![1, 0, 2, 2, 3]);
    }
}
