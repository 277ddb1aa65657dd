namespace EdgeKube.Master.Api.Selectors;

/// <summary>
/// The label selector grammar of apimachinery's labels.Parse, with its error texts:
/// <code>
/// selector    ::= requirement | requirement "," selector
/// requirement ::= ["!"] KEY [ ("in" | "notin") "(" VALUE {"," VALUE} ")" | ("=" | "==" | "!=" | "&gt;" | "&lt;") VALUE ]
/// </code>
/// Whitespace separates tokens and is otherwise ignored; "in" and "notin" are values where a value is expected
/// ("a in (in)"); an empty value is allowed ("a=", "a in (,b)").
/// </summary>
internal sealed class LabelSelectorParser
{
    private readonly List<(Token Kind, string Text)> _tokens;
    private int _position;

    private LabelSelectorParser(string text) => _tokens = Scan(text);

    private enum Token
    {
        Error,
        EndOfString,
        ClosedPar,
        Comma,
        DoesNotExist,
        DoubleEquals,
        Equals,
        GreaterThan,
        Identifier,
        In,
        LessThan,
        NotEquals,
        NotIn,
        OpenPar,
    }

    // Where the parser stands decides whether "in"/"notin" are operators or plain identifiers.
    private enum Context
    {
        KeyAndOperator,
        Values,
    }

    /// <summary>The requirements of <paramref name="text"/> in the order written; throws <see cref="SelectorException"/>.</summary>
    public static List<LabelRequirement> Parse(string text) => new LabelSelectorParser(text).ParseSelector();

    private List<LabelRequirement> ParseSelector()
    {
        var requirements = new List<LabelRequirement>();
        while (true)
        {
            var (kind, text) = Lookahead(Context.Values);
            switch (kind)
            {
                case Token.Identifier or Token.DoesNotExist:
                    requirements.Add(ParseRequirementWrapped());
                    var (next, nextText) = Consume(Context.Values);
                    switch (next)
                    {
                        case Token.EndOfString:
                            return requirements;
                        case Token.Comma:
                            var (after, afterText) = Lookahead(Context.Values);
                            if (after is not (Token.Identifier or Token.DoesNotExist))
                            {
                                throw new SelectorException($"found '{afterText}', expected: identifier after ','");
                            }

                            break;
                        default:
                            throw new SelectorException($"found '{nextText}', expected: ',' or 'end of string'");
                    }

                    break;
                case Token.EndOfString:
                    return requirements;
                default:
                    throw new SelectorException($"found '{text}', expected: !, identifier, or 'end of string'");
            }
        }
    }

    private LabelRequirement ParseRequirementWrapped()
    {
        try
        {
            return ParseRequirement();
        }
        catch (SelectorException e)
        {
            throw new SelectorException("unable to parse requirement: " + e.Message);
        }
    }

    private LabelRequirement ParseRequirement()
    {
        var (key, inferred) = ParseKeyAndInferOperator();
        if (inferred is LabelOperator.Exists or LabelOperator.DoesNotExist)
        {
            return LabelRequirement.Create(key, inferred.Value, []);
        }

        var op = ParseOperator();
        var values = op is LabelOperator.In or LabelOperator.NotIn ? ParseValues() : ParseExactValue();
        return LabelRequirement.Create(key, op, values.Order(StringComparer.Ordinal).ToList());
    }

    private (string Key, LabelOperator? Operator) ParseKeyAndInferOperator()
    {
        LabelOperator? op = null;
        var (kind, text) = Consume(Context.Values);
        if (kind == Token.DoesNotExist)
        {
            op = LabelOperator.DoesNotExist;
            (kind, text) = Consume(Context.Values);
        }

        if (kind != Token.Identifier)
        {
            throw new SelectorException($"found '{text}', expected: identifier");
        }

        if (LabelValidation.QualifiedNameErrors(text) is { Count: > 0 } errors)
        {
            // Upstream validates the key against a nil field path here, hence "<nil>".
            throw new SelectorException(GoFormat.Invalid("<nil>", text, string.Join("; ", errors)));
        }

        if (Lookahead(Context.Values).Kind is Token.EndOfString or Token.Comma && op is null)
        {
            op = LabelOperator.Exists;
        }

        return (text, op);
    }

    private LabelOperator ParseOperator()
    {
        var (kind, text) = Consume(Context.KeyAndOperator);
        return kind switch
        {
            Token.In => LabelOperator.In,
            Token.Equals => LabelOperator.Equals,
            Token.DoubleEquals => LabelOperator.DoubleEquals,
            Token.GreaterThan => LabelOperator.GreaterThan,
            Token.LessThan => LabelOperator.LessThan,
            Token.NotIn => LabelOperator.NotIn,
            Token.NotEquals => LabelOperator.NotEquals,
            _ => throw new SelectorException($"found '{text}', expected: in, notin, =, ==, !=, gt, lt"),
        };
    }

    private HashSet<string> ParseValues()
    {
        var (kind, text) = Consume(Context.Values);
        if (kind != Token.OpenPar)
        {
            throw new SelectorException($"found '{text}' expected: '('");
        }

        (kind, text) = Lookahead(Context.Values);
        switch (kind)
        {
            case Token.Identifier or Token.Comma:
                var values = ParseIdentifiersList();
                if (Consume(Context.Values).Kind != Token.ClosedPar)
                {
                    throw new SelectorException($"found '{text}', expected: ')'");
                }

                return values;
            case Token.ClosedPar:
                // "()" is the set holding the empty value.
                Consume(Context.Values);
                return new HashSet<string>(StringComparer.Ordinal) { "" };
            default:
                throw new SelectorException($"found '{text}', expected: ',', ')' or identifier");
        }
    }

    private HashSet<string> ParseIdentifiersList()
    {
        var values = new HashSet<string>(StringComparer.Ordinal);
        while (true)
        {
            var (kind, text) = Consume(Context.Values);
            switch (kind)
            {
                case Token.Identifier:
                    values.Add(text);
                    var (next, nextText) = Lookahead(Context.Values);
                    switch (next)
                    {
                        case Token.Comma:
                            continue;
                        case Token.ClosedPar:
                            return values;
                        default:
                            throw new SelectorException($"found '{nextText}', expected: ',' or ')'");
                    }

                case Token.Comma:
                    // A comma with nothing before or after it stands for the empty value: "(,a" "a,)" "a,,b".
                    if (values.Count == 0)
                    {
                        values.Add("");
                    }

                    var following = Lookahead(Context.Values).Kind;
                    if (following == Token.ClosedPar)
                    {
                        values.Add("");
                        return values;
                    }

                    if (following == Token.Comma)
                    {
                        Consume(Context.Values);
                        values.Add("");
                    }

                    break;
                default:
                    throw new SelectorException($"found '{text}', expected: ',', or identifier");
            }
        }
    }

    private HashSet<string> ParseExactValue()
    {
        var values = new HashSet<string>(StringComparer.Ordinal);
        if (Lookahead(Context.Values).Kind is Token.EndOfString or Token.Comma)
        {
            values.Add("");
            return values;
        }

        var (kind, text) = Consume(Context.Values);
        if (kind != Token.Identifier)
        {
            throw new SelectorException($"found '{text}', expected: identifier");
        }

        values.Add(text);
        return values;
    }

    private (Token Kind, string Text) Lookahead(Context context) => AsIn(context, _tokens[_position]);

    private (Token Kind, string Text) Consume(Context context) => AsIn(context, _tokens[_position++]);

    private static (Token Kind, string Text) AsIn(Context context, (Token Kind, string Text) token) =>
        context == Context.Values && token.Kind is Token.In or Token.NotIn ? (Token.Identifier, token.Text) : token;

    private static List<(Token Kind, string Text)> Scan(string text)
    {
        var tokens = new List<(Token, string)>();
        var position = 0;

        // Go's lexer reads a NUL byte as the end of input.
        char Peek() => position < text.Length ? text[position] : '\0';

        while (true)
        {
            while (IsWhitespace(Peek()))
            {
                position++;
            }

            var c = Peek();
            if (c == '\0')
            {
                tokens.Add((Token.EndOfString, ""));
                return tokens;
            }

            if (IsSpecial(c))
            {
                tokens.Add(ScanSpecial());
            }
            else
            {
                var start = position;
                while (Peek() is var ch && ch != '\0' && !IsSpecial(ch) && !IsWhitespace(ch))
                {
                    position++;
                }

                var word = text[start..position];
                tokens.Add(word switch
                {
                    "in" => (Token.In, word),
                    "notin" => (Token.NotIn, word),
                    _ => (Token.Identifier, word),
                });
            }
        }

        // The longest run of operator characters that still spells an operator: "!=" rather than "!", "=".
        (Token, string) ScanSpecial()
        {
            var start = position;
            (Token Kind, string Text)? longest = null;
            while (IsSpecial(Peek()))
            {
                var candidate = text[start..(position + 1)];
                if (SpecialToken(candidate) is { } kind)
                {
                    longest = (kind, candidate);
                }
                else if (longest is not null)
                {
                    break;
                }

                position++;
            }

            return longest ?? (Token.Error, $"error expected: keyword found '{text[start..position]}'");
        }
    }

    private static Token? SpecialToken(string text) => text switch
    {
        ")" => Token.ClosedPar,
        "," => Token.Comma,
        "!" => Token.DoesNotExist,
        "==" => Token.DoubleEquals,
        "=" => Token.Equals,
        ">" => Token.GreaterThan,
        "<" => Token.LessThan,
        "!=" => Token.NotEquals,
        "(" => Token.OpenPar,
        _ => null,
    };

    private static bool IsWhitespace(char c) => c is ' ' or '\t' or '\r' or '\n';

    private static bool IsSpecial(char c) => c is '=' or '!' or '(' or ')' or ',' or '>' or '<';
}
