-- Test script with a syntax error on line 2.
function transform(line) return line +
end
