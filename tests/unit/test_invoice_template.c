/*
 * test_invoice_template.c - the invoice template engine
 * (server/invoice_template.c): values by dotted path, HTML escaping of
 * every value, sections over lists, objects and flags, inverted sections,
 * syntax errors and unknown placeholders reported with file and line, and
 * the shipped templates/invoice.html checking clean against the invoice
 * data model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "invoice.h"
#include "invoice_template.h"

/* Parses `text` (which must be valid) and renders it with `data_json`;
 * returns the malloc'd output. */
static char *render(const char *text, const char *data_json)
{
    invoice_template *t = NULL;
    char err[256] = "";
    int rc = invoice_template_parse(text, strlen(text), "t.html", &t, err, sizeof err);
    if (rc != 0) print_error("parse failed: %s\n", err);
    assert_int_equal(rc, 0);
    json_error_t jerr;
    json_t *data = json_loads(data_json, 0, &jerr);
    assert_non_null(data);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(invoice_template_render(t, data, &out, &len), 0);
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    json_decref(data);
    invoice_template_free(t);
    return out;
}

static void expect_render(const char *text, const char *data_json, const char *want)
{
    char *got = render(text, data_json);
    if (strcmp(got, want) != 0) {
        print_error("template: %s\n     got: %s\nexpected: %s\n", text, got, want);
        free(got);
        fail();
    }
    free(got);
}

/* Parses `text`, expecting it to fail with a message containing `want`. */
static void expect_parse_error(const char *text, const char *want)
{
    invoice_template *t = NULL;
    char err[256] = "";
    int rc = invoice_template_parse(text, strlen(text), "conf/bad.html", &t, err, sizeof err);
    if (rc == 0 || !strstr(err, want)) {
        print_error("template: %s\nrc %d, error: '%s'\nexpected an error containing '%s'\n", text, rc, err, want);
        invoice_template_free(t);
        fail();
    }
    assert_null(t);
}

static void test_values_are_substituted_by_dotted_path(void **state)
{
    (void)state;
    expect_render("Invoice {{invoice.number}} for {{ order.number }}.",
                  "{\"invoice\":{\"number\":\"INV-2026-000001\"},\"order\":{\"number\":\"ORD-7\"}}",
                  "Invoice INV-2026-000001 for ORD-7.");
    expect_render("{{n}} {{yes}} {{no}}", "{\"n\":42,\"yes\":true,\"no\":false}", "42 true false");
}

static void test_every_value_is_html_escaped(void **state)
{
    (void)state;
    expect_render("<td>{{name}}</td><a title=\"{{name}}\">",
                  "{\"name\":\"<script>alert('x') & \\\"y\\\"</script>\"}",
                  "<td>&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;</td>"
                  "<a title=\"&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;\">");
    /* Braces in a value are text, not template syntax. */
    expect_render("{{v}}", "{\"v\":\"{{order.number}}\"}", "{{order.number}}");
}

static void test_section_repeats_for_each_list_element(void **state)
{
    (void)state;
    expect_render("<ul>{{#items}}<li>{{name}} x{{quantity}} ({{currency}})</li>{{/items}}</ul>",
                  "{\"currency\":\"USD\",\"items\":[{\"name\":\"Tea\",\"quantity\":2},"
                  "{\"name\":\"<b>Cup</b>\",\"quantity\":1}]}",
                  "<ul><li>Tea x2 (USD)</li><li>&lt;b&gt;Cup&lt;/b&gt; x1 (USD)</li></ul>");
    expect_render("[{{#lines}}{{.}};{{/lines}}]", "{\"lines\":[\"a\",\"<b>\"]}", "[a;&lt;b&gt;;]");
    expect_render("[{{#items}}x{{/items}}]", "{\"items\":[]}", "[]");
}

static void test_section_on_object_or_flag_renders_once_when_truthy(void **state)
{
    (void)state;
    expect_render("{{#seller}}{{name}}{{/seller}}|{{#paid}}PAID{{/paid}}|{{#tax_id}}Tax {{tax_id}}{{/tax_id}}",
                  "{\"seller\":{\"name\":\"Shop\"},\"paid\":true,\"tax_id\":\"\"}", "Shop|PAID|");
    expect_render("{{#paid}}PAID{{/paid}}{{#missing}}M{{/missing}}", "{\"paid\":false}", "");
}

static void test_inverted_section_renders_when_empty_false_or_missing(void **state)
{
    (void)state;
    expect_render("{{^refunds}}No refunds.{{/refunds}}", "{\"refunds\":[]}", "No refunds.");
    expect_render("{{^refunds}}No refunds.{{/refunds}}", "{\"refunds\":[{\"id\":\"re_1\"}]}", "");
    expect_render("{{^paid}}UNPAID{{/paid}}{{^gone}}!{{/gone}}", "{\"paid\":false}", "UNPAID!");
}

static void test_inner_names_shadow_outer_ones(void **state)
{
    (void)state;
    expect_render("{{#items}}{{name}}/{{order.number}} {{/items}}{{name}}",
                  "{\"name\":\"outer\",\"order\":{\"number\":\"O1\"},\"items\":[{\"name\":\"inner\"}]}",
                  "inner/O1 outer");
}

static void test_unknown_placeholder_renders_empty_when_unchecked(void **state)
{
    (void)state;
    expect_render("a{{nope}}b{{order.nope}}c{{#nope}}x{{/nope}}d", "{\"order\":{}}", "abcd");
}

static void test_comments_render_nothing(void **state)
{
    (void)state;
    expect_render("a{{! a comment\n over two lines }}b", "{}", "ab");
}

static void test_syntax_errors_name_file_and_line(void **state)
{
    (void)state;
    expect_parse_error("line 1\nline 2 {{order.number\n", "conf/bad.html:2: '{{' is never closed");
    expect_parse_error("a\nb\n{{#items}}\n{{name}}\n", "conf/bad.html:3: {{#items}} is never closed with {{/items}}");
    expect_parse_error("{{#items}}\n{{/payments}}", "conf/bad.html:2: {{/payments}} does not close {{#items}} opened at line 1");
    expect_parse_error("\n\n\n{{/items}}", "conf/bad.html:4: {{/items}} closes a section that was never opened");
    expect_parse_error("x\n{{order number}}", "conf/bad.html:2: invalid placeholder {{order number}}");
    expect_parse_error("{{{raw}}}", "conf/bad.html:1: invalid placeholder");
    expect_parse_error("{{}}", "conf/bad.html:1: invalid placeholder");
    expect_parse_error("{{a..b}}", "conf/bad.html:1: invalid placeholder");
    expect_parse_error("{{#.}}{{/.}}", "conf/bad.html:1: a section needs a name");
    expect_parse_error("{{#a}}{{#b}}{{#c}}{{#d}}{{#e}}{{#f}}{{#g}}{{#h}}{{#i}}", "nested deeper than 8");
    char nul[] = "ab\0cd";
    invoice_template *t = NULL;
    char err[256];
    assert_int_equal(invoice_template_parse(nul, 5, "n.html", &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "NUL"));
}

static void test_check_reports_unknown_placeholders_with_line(void **state)
{
    (void)state;
    const char *text = "{{order.number}}\n{{#items}}\n{{name}} {{colour}}\n{{/items}}\n";
    invoice_template *t = NULL;
    char err[256] = "";
    assert_int_equal(invoice_template_parse(text, strlen(text), "inv.html", &t, err, sizeof err), 0);
    json_t *shape = json_pack("{s:{s:s}, s:[{s:s}]}", "order", "number", "x", "items", "name", "x");
    assert_int_equal(invoice_template_check(t, shape, err, sizeof err), -1);
    assert_string_equal(err, "inv.html:3: unknown placeholder {{colour}}");
    /* Known names inside and outside the section pass. */
    json_object_set_new(json_array_get(json_object_get(shape, "items"), 0), "colour", json_string("red"));
    assert_int_equal(invoice_template_check(t, shape, err, sizeof err), 0);
    json_decref(shape);
    invoice_template_free(t);
}

static void test_load_names_a_missing_file(void **state)
{
    (void)state;
    invoice_template *t = NULL;
    char err[512] = "";
    assert_int_equal(invoice_template_load("/nonexistent/invoice.html", &t, err, sizeof err), -1);
    assert_null(t);
    assert_non_null(strstr(err, "/nonexistent/invoice.html"));
    assert_non_null(strstr(err, "No such file"));
}

/* The template payd ships is valid and uses only names the data model has;
 * rendered with the sample it shows the order, items and money. */
static void test_shipped_template_checks_against_the_invoice_model(void **state)
{
    (void)state;
    invoice_template *t = NULL;
    char err[512] = "";
    int rc = invoice_template_load("templates/invoice.html", &t, err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    config cfg = {0};
    cfg.invoice_seller_name = "Tea & Co";
    cfg.invoice_seller_address = "1 Leaf Lane\\n Springfield ";
    json_t *sample = invoice_sample(&cfg);
    rc = invoice_template_check(t, sample, err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    char *html = NULL;
    size_t len = 0;
    assert_int_equal(invoice_template_render(t, sample, &html, &len), 0);
    assert_non_null(strstr(html, "Tea &amp; Co"));
    assert_non_null(strstr(html, "1 Leaf Lane<br>"));
    assert_non_null(strstr(html, "Springfield<br>"));
    assert_non_null(strstr(html, "INV-2026-000001"));
    assert_non_null(strstr(html, "ORD-2026-000001"));
    assert_non_null(strstr(html, "USD 19.99"));
    assert_non_null(strstr(html, "USD 26.59"));
    assert_non_null(strstr(html, "PARTIALLY REFUNDED"));
    assert_null(strstr(html, "{{"));
    free(html);
    json_decref(sample);
    invoice_template_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_are_substituted_by_dotted_path),
        cmocka_unit_test(test_every_value_is_html_escaped),
        cmocka_unit_test(test_section_repeats_for_each_list_element),
        cmocka_unit_test(test_section_on_object_or_flag_renders_once_when_truthy),
        cmocka_unit_test(test_inverted_section_renders_when_empty_false_or_missing),
        cmocka_unit_test(test_inner_names_shadow_outer_ones),
        cmocka_unit_test(test_unknown_placeholder_renders_empty_when_unchecked),
        cmocka_unit_test(test_comments_render_nothing),
        cmocka_unit_test(test_syntax_errors_name_file_and_line),
        cmocka_unit_test(test_check_reports_unknown_placeholders_with_line),
        cmocka_unit_test(test_load_names_a_missing_file),
        cmocka_unit_test(test_shipped_template_checks_against_the_invoice_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
