-- Test script that defines no transform().
function other(x) return x end
