//! The kinds of tokens and nodes in the lossless tree.

/// What a token or a node of the lossless tree is.
///
/// Trivia (whitespace, comments, a leading byte order mark) are ordinary tokens: the tree keeps
/// every byte, and printing is concatenating token texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SyntaxKind {
    /// Spaces, tabs, CR, LF, vertical tab, form feed.
    Whitespace,
    /// `#` up to the end of the line (a CR before the LF is left to the whitespace).
    Comment,
    /// A UTF-8 byte order mark at the very start of a file (a deviation: Spry reads it as a word).
    ByteOrderMark,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `{`
    LCurly,
    /// `}`
    RCurly,
    /// An integer literal such as `42`, `-7` or `1_000`.
    Integer,
    /// A float literal such as `3.5`, `1e3` or `-inf`.
    Float,
    /// A string literal, quotes included.
    String,
    /// A plain word: `foo`, `=`, `:=`, a special run such as `&&|`.
    EvalWord,
    /// `:name`
    ArgWord,
    /// `:$name`
    GetArgWord,
    /// `$@name`
    GetSelfWord,
    /// `$Mod::name`
    GetModuleWord,
    /// `$name`
    GetWord,
    /// `'name`
    LitWord,
    /// `name:`, one key of a keyword message.
    KeywordPart,
    /// `@name`
    SelfWord,
    /// `Mod::name`
    ModuleWord,
    /// A word that is an error: `'`, `@`, `:$` or `$@` alone.
    Malformed,
    /// The whole file.
    Root,
    /// `[ ... ]`
    Block,
    /// `( ... )`
    Paren,
    /// `{ ... }`
    Curly,
}

impl SyntaxKind {
    /// Whether the language ignores this token.
    #[inline]
    pub fn is_trivia(self) -> bool {
        matches!(
            self,
            SyntaxKind::Whitespace | SyntaxKind::Comment | SyntaxKind::ByteOrderMark
        )
    }

    /// Whether this is an opening bracket.
    #[inline]
    pub fn is_open(self) -> bool {
        matches!(
            self,
            SyntaxKind::LBracket | SyntaxKind::LParen | SyntaxKind::LCurly
        )
    }

    /// Whether this is a closing bracket.
    #[inline]
    pub fn is_close(self) -> bool {
        matches!(
            self,
            SyntaxKind::RBracket | SyntaxKind::RParen | SyntaxKind::RCurly
        )
    }

    /// Whether this token is a word of some kind (not a literal, bracket or trivia).
    #[inline]
    pub fn is_word(self) -> bool {
        (self as u8) >= (SyntaxKind::EvalWord as u8)
            && (self as u8) <= (SyntaxKind::ModuleWord as u8)
    }

    /// For an opening bracket, the composite it opens; for a closing one, the composite it closes.
    pub fn composite(self) -> Option<SyntaxKind> {
        match self {
            SyntaxKind::LBracket | SyntaxKind::RBracket => Some(SyntaxKind::Block),
            SyntaxKind::LParen | SyntaxKind::RParen => Some(SyntaxKind::Paren),
            SyntaxKind::LCurly | SyntaxKind::RCurly => Some(SyntaxKind::Curly),
            _ => None,
        }
    }

    /// The name used in tree dumps, such as `L_BRACKET` or `EVAL_WORD`.
    pub fn name(self) -> &'static str {
        match self {
            SyntaxKind::Whitespace => "WHITESPACE",
            SyntaxKind::Comment => "COMMENT",
            SyntaxKind::ByteOrderMark => "BOM",
            SyntaxKind::LBracket => "L_BRACKET",
            SyntaxKind::RBracket => "R_BRACKET",
            SyntaxKind::LParen => "L_PAREN",
            SyntaxKind::RParen => "R_PAREN",
            SyntaxKind::LCurly => "L_CURLY",
            SyntaxKind::RCurly => "R_CURLY",
            SyntaxKind::Integer => "INTEGER",
            SyntaxKind::Float => "FLOAT",
            SyntaxKind::String => "STRING",
            SyntaxKind::EvalWord => "EVAL_WORD",
            SyntaxKind::ArgWord => "ARG_WORD",
            SyntaxKind::GetArgWord => "GET_ARG_WORD",
            SyntaxKind::GetSelfWord => "GET_SELF_WORD",
            SyntaxKind::GetModuleWord => "GET_MODULE_WORD",
            SyntaxKind::GetWord => "GET_WORD",
            SyntaxKind::LitWord => "LIT_WORD",
            SyntaxKind::KeywordPart => "KEYWORD_PART",
            SyntaxKind::SelfWord => "SELF_WORD",
            SyntaxKind::ModuleWord => "MODULE_WORD",
            SyntaxKind::Malformed => "MALFORMED",
            SyntaxKind::Root => "ROOT",
            SyntaxKind::Block => "BLOCK",
            SyntaxKind::Paren => "PAREN",
            SyntaxKind::Curly => "CURLY",
        }
    }
}
