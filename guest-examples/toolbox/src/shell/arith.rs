//! `$(( ))` and `(( ))`: integer arithmetic over shell variables.

use brush_parser::ast::{
    ArithmeticExpr, ArithmeticTarget, BinaryOperator, UnaryAssignmentOperator, UnaryOperator,
};

use super::Shell;
use crate::io::Io;

impl Shell {
    /// Expands `$var` and `$(...)` inside the expression text, parses and
    /// evaluates it.
    pub(super) fn eval_arith(&mut self, text: &str, io: &Io) -> Result<i64, String> {
        let expanded = self.expand_str(text, io)?;
        let expr = brush_parser::arithmetic::parse(expanded.trim())
            .map_err(|_| format!("arithmetic syntax error: {}", expanded.trim()))?;
        self.arith(&expr)
    }

    fn arith_var(&self, target: &ArithmeticTarget) -> Result<(String, i64), String> {
        let ArithmeticTarget::Variable(name) = target else {
            return Err("arrays are not supported".into());
        };
        let raw = self.var(name).unwrap_or("").trim().to_string();
        let value = if raw.is_empty() {
            0
        } else {
            match raw.parse() {
                Ok(n) => n,
                // A variable holding an expression is evaluated, as in sh.
                Err(_) => match brush_parser::arithmetic::parse(&raw) {
                    Ok(e) => self.clone().arith(&e)?,
                    Err(_) => return Err(format!("{name}: not a number: {raw}")),
                },
            }
        };
        Ok((name.clone(), value))
    }

    fn arith(&mut self, expr: &ArithmeticExpr) -> Result<i64, String> {
        Ok(match expr {
            ArithmeticExpr::Literal(n) => *n,
            ArithmeticExpr::Reference(target) => self.arith_var(target)?.1,
            ArithmeticExpr::UnaryOp(op, e) => {
                let v = self.arith(e)?;
                match op {
                    UnaryOperator::UnaryPlus => v,
                    UnaryOperator::UnaryMinus => v.wrapping_neg(),
                    UnaryOperator::BitwiseNot => !v,
                    UnaryOperator::LogicalNot => i64::from(v == 0),
                }
            }
            ArithmeticExpr::BinaryOp(BinaryOperator::LogicalAnd, a, b) => {
                i64::from(self.arith(a)? != 0 && self.arith(b)? != 0)
            }
            ArithmeticExpr::BinaryOp(BinaryOperator::LogicalOr, a, b) => {
                i64::from(self.arith(a)? != 0 || self.arith(b)? != 0)
            }
            ArithmeticExpr::BinaryOp(op, a, b) => {
                let (a, b) = (self.arith(a)?, self.arith(b)?);
                binary(op, a, b)?
            }
            ArithmeticExpr::Conditional(c, t, f) => {
                if self.arith(c)? != 0 {
                    self.arith(t)?
                } else {
                    self.arith(f)?
                }
            }
            ArithmeticExpr::Assignment(target, e) => {
                let v = self.arith(e)?;
                let (name, _) = self.arith_var(target)?;
                self.set_var(&name, &v.to_string());
                v
            }
            ArithmeticExpr::BinaryAssignment(op, target, e) => {
                let rhs = self.arith(e)?;
                let (name, old) = self.arith_var(target)?;
                let v = binary(op, old, rhs)?;
                self.set_var(&name, &v.to_string());
                v
            }
            ArithmeticExpr::UnaryAssignment(op, target) => {
                let (name, old) = self.arith_var(target)?;
                let (new, result) = match op {
                    UnaryAssignmentOperator::PrefixIncrement => (old + 1, old + 1),
                    UnaryAssignmentOperator::PrefixDecrement => (old - 1, old - 1),
                    UnaryAssignmentOperator::PostfixIncrement => (old + 1, old),
                    UnaryAssignmentOperator::PostfixDecrement => (old - 1, old),
                };
                self.set_var(&name, &new.to_string());
                result
            }
        })
    }
}

fn binary(op: &BinaryOperator, a: i64, b: i64) -> Result<i64, String> {
    Ok(match op {
        BinaryOperator::Power => {
            if b < 0 {
                return Err("exponent less than 0".into());
            }
            a.wrapping_pow(b as u32)
        }
        BinaryOperator::Multiply => a.wrapping_mul(b),
        BinaryOperator::Divide | BinaryOperator::Modulo if b == 0 => {
            return Err("division by zero".into())
        }
        BinaryOperator::Divide => a.wrapping_div(b),
        BinaryOperator::Modulo => a.wrapping_rem(b),
        BinaryOperator::Comma => b,
        BinaryOperator::Add => a.wrapping_add(b),
        BinaryOperator::Subtract => a.wrapping_sub(b),
        BinaryOperator::ShiftLeft => a.wrapping_shl(b as u32),
        BinaryOperator::ShiftRight => a.wrapping_shr(b as u32),
        BinaryOperator::LessThan => i64::from(a < b),
        BinaryOperator::LessThanOrEqualTo => i64::from(a <= b),
        BinaryOperator::GreaterThan => i64::from(a > b),
        BinaryOperator::GreaterThanOrEqualTo => i64::from(a >= b),
        BinaryOperator::Equals => i64::from(a == b),
        BinaryOperator::NotEquals => i64::from(a != b),
        BinaryOperator::BitwiseAnd => a & b,
        BinaryOperator::BitwiseXor => a ^ b,
        BinaryOperator::BitwiseOr => a | b,
        BinaryOperator::LogicalAnd => i64::from(a != 0 && b != 0),
        BinaryOperator::LogicalOr => i64::from(a != 0 || b != 0),
    })
}
