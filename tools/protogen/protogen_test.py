#!/usr/bin/env python3
"""Tests that protogen.py rejects bad definitions with file:line errors and is deterministic."""

import contextlib
import io
import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protogen  # noqa: E402

GOOD = """api sample key 900 versions 0-4 flexible 2+

request
  name string
  ids []int32 v1+
  nested []thing
    a int16
    b string? v3+
  extra int64 tag 0 default -1

response
  error_code int16
"""


class ProtogenTest(unittest.TestCase):
    def run_gen(self, files, out=None):
        with tempfile.TemporaryDirectory() as d:
            for name, text in files.items():
                with open(os.path.join(d, name), "w") as f:
                    f.write(text)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                args = ["--in", d] + (["--out", out] if out else [])
                rc = protogen.main(args)
            return rc, err.getvalue().replace(d + "/", "")

    def expect_error(self, text, fragment, line):
        rc, err = self.run_gen({"sample.msg": text})
        self.assertEqual(rc, 1, err)
        self.assertIn(f"sample.msg:{line}: ", err)
        self.assertIn(fragment, err)

    def test_good_definition_passes(self):
        rc, err = self.run_gen({"sample.msg": GOOD})
        self.assertEqual(rc, 0, err)

    def test_unknown_type(self):
        self.expect_error(GOOD.replace("name string", "name strnig"), "unknown type 'strnig'", 4)

    def test_version_range_outside_message(self):
        self.expect_error(GOOD.replace("ids []int32 v1+", "ids []int32 v1-7"),
                          "outside the message's 0-4", 5)

    def test_tag_outside_flexible_versions(self):
        self.expect_error(GOOD.replace("extra int64 tag 0", "extra int64 v1+ tag 0"),
                          "outside the flexible versions 2+", 9)

    def test_tag_in_message_without_flexible_versions(self):
        self.expect_error(GOOD.replace("flexible 2+", "flexible none"),
                          "without flexible versions", 9)

    def test_duplicate_tag(self):
        self.expect_error(GOOD.replace("  extra int64 tag 0 default -1\n",
                                       "  extra int64 tag 0 default -1\n  more int32 tag 0\n"),
                          "duplicate tag 0", 10)

    def test_nested_range_not_inside_parent(self):
        text = GOOD.replace("nested []thing", "nested []thing v2+").replace(
            "a int16", "a int16 v1+")
        self.expect_error(text, "not inside its parent's 2-4", 7)

    def test_nullable_integer(self):
        self.expect_error(GOOD.replace("a int16", "a int16?"), "int16 cannot be nullable", 7)

    def test_bad_indentation(self):
        self.expect_error(GOOD.replace("  ids []int32 v1+", "   ids []int32 v1+"),
                          "multiple of two spaces", 5)
        self.expect_error(GOOD.replace("  ids []int32 v1+", "    ids []int32 v1+"),
                          "unexpected indentation", 5)

    def test_unknown_attribute(self):
        self.expect_error(GOOD.replace("name string", "name string sometimes"),
                          "unknown field attribute 'sometimes'", 4)

    def test_bad_default(self):
        self.expect_error(GOOD.replace("default -1", "default 1.5"), "not a valid int64", 9)

    def test_conflicting_struct_definitions(self):
        text = GOOD.replace("response\n  error_code int16\n",
                            "response\n  error_code int16\n  other []thing\n    c int8\n")
        rc, err = self.run_gen({"sample.msg": text})
        # Request and response are separate classes: the same name may differ between them.
        self.assertEqual(rc, 0, err)
        text = GOOD.replace("  extra int64", "  again []thing\n    c int8\n  extra int64")
        self.expect_error(text, "already defined differently", 9)

    def test_duplicate_api_key(self):
        rc, err = self.run_gen({"a.msg": GOOD, "b.msg": GOOD.replace("sample", "other")})
        self.assertEqual(rc, 1)
        self.assertIn("api key 900 also used by", err)

    def test_output_is_deterministic(self):
        with tempfile.TemporaryDirectory() as o1, tempfile.TemporaryDirectory() as o2:
            self.assertEqual(self.run_gen({"sample.msg": GOOD}, o1)[0], 0)
            self.assertEqual(self.run_gen({"sample.msg": GOOD}, o2)[0], 0)
            names = []
            for root, _, files in os.walk(o1):
                names += [os.path.relpath(os.path.join(root, f), o1) for f in files]
            self.assertIn(os.path.join("messages", "sample.h"), names)
            for n in sorted(names):
                with open(os.path.join(o1, n)) as a, open(os.path.join(o2, n)) as b:
                    self.assertEqual(a.read(), b.read(), n)


if __name__ == "__main__":
    unittest.main()
