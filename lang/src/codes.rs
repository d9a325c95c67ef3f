//! The code of every kind of diagnostic (`K0102`), stable across releases so that people can
//! look one up, search for it and tell tools which to expect. docs/diagnostics.md explains
//! each with an example and its fix; `lang/tests/diagnostics.rs` keeps the two in step and
//! checks each against a fixture that produces it.

use std::fmt;

macro_rules! codes {
    ($($variant:ident = $id:literal, $name:literal;)*) => {
        /// What kind of problem a diagnostic reports.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            /// `K0102`.
            pub fn id(self) -> &'static str {
                match self {
                    $(Code::$variant => $id,)*
                }
            }

            /// A few words: `unknown-key`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    FileUnreadable = "K0001", "file-unreadable";
    YamlSyntax = "K0002", "yaml-syntax";
    NotAKoreoKind = "K0003", "not-a-koreo-kind";
    UnsupportedVersion = "K0004", "unsupported-version";
    DuplicateDefinition = "K0005", "duplicate-definition";
    WrongType = "K0101", "wrong-type";
    UnknownKey = "K0102", "unknown-key";
    MissingField = "K0103", "missing-field";
    InvalidValue = "K0104", "invalid-value";
    ExpressionNotAllowed = "K0105", "expression-not-allowed";
    ExpressionRequired = "K0106", "expression-required";
    ExpressionSyntax = "K0201", "expression-syntax";
    ExpressionTooCostly = "K0202", "expression-too-costly";
    UndefinedVariable = "K0203", "undefined-variable";
    NotFound = "K0301", "not-found";
    ReferenceHasErrors = "K0302", "reference-has-errors";
    WrongKind = "K0303", "wrong-kind";
    DuplicateStep = "K0401", "duplicate-step";
    UnknownStep = "K0402", "unknown-step";
    StepOrder = "K0403", "step-order";
    MissingInput = "K0404", "missing-input";
    UnusedInput = "K0405", "unused-input";
    SharedTrigger = "K0406", "shared-trigger";
    NoTrigger = "K0407", "no-trigger";
    UnknownField = "K0501", "unknown-field";
    TypeMismatch = "K0502", "type-mismatch";
    OptionalRead = "K0503", "optional-read";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}
